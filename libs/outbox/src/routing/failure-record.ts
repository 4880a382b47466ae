/**
 * Kept in a failing job's `progress`, so dead letters list which handlers failed, how often and
 * when, and who gave up on the message — without parsing error text.
 */
export interface FailureRecord {
  /** The handlers whose last run failed, by name; `MESSAGE` when the message itself could not be read. */
  failures: Record<string, HandlerFailure>;
  /** Set when the outbox gave up on the message as a whole, rather than a handler on its last attempt. */
  gaveUp?: GaveUp;
}

export interface HandlerFailure {
  error: string;
  /** Failed runs of this handler on this message. */
  attempts: number;
  firstFailedAt: string;
  lastFailedAt: string;
}

export interface GaveUp {
  reason: 'unreadable' | 'handlers-missing' | 'still-failing';
  /** Handlers no process that took the message had, when the reason is `handlers-missing`. */
  missing?: string[];
  /** Which service, process and build gave up. */
  service: string;
  process: string;
  version: string;
  at: string;
}

/** The key under which a message that could not be read at all is recorded. */
export const MESSAGE = '(message)';

export function isFailureRecord(value: unknown): value is FailureRecord {
  return typeof value === 'object' && value !== null && 'failures' in value;
}

/** The record after a run: failed handlers added or counted again, handlers that now succeeded removed. */
export function nextFailureRecord(
  previous: unknown,
  failed: ReadonlyMap<string, string>,
  succeeded: readonly string[],
  now = new Date(),
): FailureRecord {
  const at = now.toISOString();
  const before = isFailureRecord(previous) ? previous : { failures: {} };
  const failures: Record<string, HandlerFailure> = {};
  for (const [name, failure] of Object.entries(before.failures)) {
    if (!succeeded.includes(name)) failures[name] = failure;
  }
  for (const [name, error] of failed) {
    const earlier = failures[name];
    failures[name] = {
      error,
      attempts: (earlier?.attempts ?? 0) + 1,
      firstFailedAt: earlier?.firstFailedAt ?? at,
      lastFailedAt: at,
    };
  }
  return { failures, ...(before.gaveUp ? { gaveUp: before.gaveUp } : {}) };
}

/** The record once the outbox gave up on the message as a whole. */
export function gaveUpRecord(previous: unknown, gaveUp: GaveUp): FailureRecord {
  const before = isFailureRecord(previous) ? previous : { failures: {} };
  return { failures: before.failures, gaveUp };
}

/** Whether `changed` differs from `previous` enough to write it (a progress update costs a round trip). */
export function recordChanged(previous: unknown, next: FailureRecord): boolean {
  return JSON.stringify(isFailureRecord(previous) ? previous : { failures: {} }) !== JSON.stringify(next);
}
