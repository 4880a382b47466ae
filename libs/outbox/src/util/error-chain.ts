/** How deep `errorChain` follows `cause`: drivers wrap a few times, and a chain may loop. */
const MAX_DEPTH = 6;

/** An error, then what it wraps (`cause`), then what that wraps, at most MAX_DEPTH of them. */
export function* errorChain(error: unknown): Generator<unknown> {
  let current = error;
  for (let depth = 0; current && depth < MAX_DEPTH; depth++) {
    yield current;
    current = (current as { cause?: unknown }).cause;
  }
}
