/**
 * Kept in a failing job's `progress`, so dead letters can be listed with the handler that failed
 * and when, without parsing error text.
 */
export interface FailureRecord {
  /** Class name of the handler that threw; `null` when the message itself could not be read. */
  handler: string | null;
  error: string;
  firstFailedAt: string;
  lastFailedAt: string;
}

export function isFailureRecord(value: unknown): value is FailureRecord {
  return typeof value === 'object' && value !== null && 'error' in value && 'lastFailedAt' in value;
}

export function nextFailureRecord(
  previous: unknown,
  handler: string | null,
  error: string,
  now = new Date(),
): FailureRecord {
  const at = now.toISOString();
  return { handler, error, firstFailedAt: isFailureRecord(previous) ? previous.firstFailedAt : at, lastFailedAt: at };
}
