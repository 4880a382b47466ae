/** A promise settled from outside. A rejection nobody awaits is not reported as unhandled. */
export interface Settlement {
  promise: Promise<void>;
  resolve(): void;
  reject(error: unknown): void;
}

export function settlement(): Settlement {
  let resolve!: () => void;
  let reject!: (error: unknown) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  promise.catch(() => undefined);
  return { promise, resolve, reject };
}
