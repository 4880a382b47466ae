/**
 * `promise`'s outcome if it settles within `ms`, else `fallback`. The timer is cleared either way,
 * and a late rejection is absorbed: whoever gave up waiting has already moved on.
 */
export async function waitAtMost<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  promise.catch(() => undefined);
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<F>((resolve) => {
    timer = setTimeout(() => resolve(fallback), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
