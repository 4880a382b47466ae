/**
 * Keys no payload may carry, at any depth. A reader assigning them would reach an object's
 * prototype, so the writer refuses them and the reader refuses rows that carry them anyway.
 */
export const FORBIDDEN_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** Thrown from inside `JSON.stringify` / `JSON.parse` to stop at the first forbidden key. */
export class ForbiddenKey extends Error {
  constructor(readonly key: string) {
    super(key);
  }
}

/** A `JSON.stringify` replacer that stops at the first forbidden key: the check rides the one serialising pass. */
export function refuseForbiddenKeys(key: string, value: unknown): unknown {
  if (FORBIDDEN_KEYS.has(key)) throw new ForbiddenKey(key);
  return value;
}

/**
 * Where the first forbidden key sits, as `payload.items[2].constructor`. Runs only once a
 * forbidden key was found, so the error can name it; walks the value as `JSON.stringify` does.
 */
export function forbiddenKeyPath(value: unknown, path = 'payload', seen = new Set<object>()): string | undefined {
  if (value === null || typeof value !== 'object' || seen.has(value)) return undefined;
  seen.add(value);
  const json = (value as { toJSON?: unknown }).toJSON;
  if (typeof json === 'function') return forbiddenKeyPath(json.call(value), path, seen);
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = forbiddenKeyPath(value[i], `${path}[${i}]`, seen);
      if (found) return found;
    }
    return undefined;
  }
  for (const key of Object.keys(value)) {
    const child = `${path}${/^[A-Za-z_$][\w$]*$/.test(key) ? `.${key}` : `[${JSON.stringify(key)}]`}`;
    if (FORBIDDEN_KEYS.has(key)) return child;
    const found = forbiddenKeyPath((value as Record<string, unknown>)[key], child, seen);
    if (found) return found;
  }
  return undefined;
}
