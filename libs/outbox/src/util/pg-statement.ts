/** What a statement handed to a `pg` client's `query` is, read from its arguments. */

export const COMMIT = /^\s*commit\s*;?\s*$/i;
export const ROLLBACK = /^\s*rollback\s*;?\s*$/i;

/** A statement without bind parameters, answered by a promise: what can share a message with another. */
export function isPlainText(args: readonly unknown[]): args is [string] | [string, []] {
  if (typeof args[0] !== 'string') return false;
  return args.length === 1 || (args.length === 2 && Array.isArray(args[1]) && args[1].length === 0);
}

/** What `query` returned is a promise (not a cursor, nor nothing for a callback). */
export function isThenable<T = unknown>(value: unknown): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}

/** Answered by a promise: not a cursor (a submittable) nor a call with a callback. */
export function returnsPromise(args: readonly unknown[]): boolean {
  const first = args[0] as { submit?: unknown } | null;
  return typeof args[args.length - 1] !== 'function' && typeof first?.submit !== 'function';
}
