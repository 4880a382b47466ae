import type { Job } from 'bullmq';
import type { OutboxHeaders } from '../message/message-headers.js';
import { MESSAGE, isFailureRecord, type GaveUp } from '../routing/failure-record.js';
import type { OutboxJobData } from '../routing/job-data.js';

/** Why a message became a dead letter. */
export type DeadLetterReason =
  /** One or more handlers failed on every attempt. */
  | 'handler-failed'
  /** The message could not be read (unknown type with no handler, bad payload, a foreign job). */
  | 'unreadable'
  /** Handlers the service registered never came: no process that took it had them in time. */
  | 'handlers-missing'
  /** Retried for some handlers only; others still fail. */
  | 'still-failing'
  /** Its worker died too many times while running it (`worker.maxStalledCount`). */
  | 'worker-died';

/** One handler that failed on a dead letter. */
export interface FailedHandler {
  name: string;
  error: string;
  /** Failed runs of this handler on this message. */
  attempts: number;
  firstFailedAt: Date;
  lastFailedAt: Date;
}

/** A message BullMQ gave up on, in one service's queue. */
export interface DeadLetter {
  /** The outbox message id (also the BullMQ job id). */
  messageId: string;
  /** Stable event type name. */
  type: string;
  /** The consuming service whose queue holds it. */
  service: string;
  /** The service that wrote the message; `null` for jobs from older relays or foreign jobs. */
  source: string | null;
  reason: DeadLetterReason;
  /** Handlers that failed on their last run (operator-discarded ones left out). */
  handlers: FailedHandler[];
  /** Handlers no process had, when `reason` is `handlers-missing`. */
  missing: string[];
  /** Handlers an operator gave up for this message. */
  discarded: string[];
  /** The error BullMQ recorded for the last failure (all handlers' errors, or why it was given up). */
  error: string;
  /** Delivery attempts made. */
  attempts: number;
  firstFailedAt: Date;
  lastFailedAt: Date;
  /** Which service, process and build gave up on it, when the outbox did (not a handler's last attempt). */
  gaveUpBy: Omit<GaveUp, 'reason' | 'missing' | 'at'> | null;
  /** Ordering key, if any. */
  key: string | null;
  /** Correlation, causation and application headers; `null` when the job carries none. */
  headers: OutboxHeaders | null;
  /** The event's JSON text, as written; payloads may be sensitive, show them only to whom may see them. */
  payload: string | null;
}

/** Selects dead letters; every given field must match. */
export interface DeadLetterFilter {
  /** Event type name, as in `DeadLetter.type`. */
  type?: string;
  /** A handler that failed on it or that it waits for. */
  handler?: string;
}

export interface DeadLetterQuery extends DeadLetterFilter {
  /** Matching dead letters to skip, newest failure first. Default 0. */
  offset?: number;
  /** Most dead letters returned. Default 100, at most 1000. */
  limit?: number;
}

/**
 * Reads a failed job as a dead letter; jobs failed without a failure record (stalled, foreign)
 * fall back to BullMQ's fields.
 */
export function toDeadLetter(job: Job, service: string): DeadLetter {
  const data = (typeof job.data === 'object' && job.data !== null ? job.data : {}) as Partial<OutboxJobData>;
  const record = isFailureRecord(job.progress) ? job.progress : undefined;
  const failedAt = new Date(job.finishedOn ?? job.processedOn ?? job.timestamp);
  const discarded = data.discarded ?? [];
  const handlers = Object.entries(record?.failures ?? {})
    .filter(([name]) => name !== MESSAGE && !discarded.includes(name))
    .map(([name, failure]) => ({
      name,
      error: failure.error,
      attempts: failure.attempts,
      firstFailedAt: new Date(failure.firstFailedAt),
      lastFailedAt: new Date(failure.lastFailedAt),
    }));
  const times = handlers.flatMap((handler) => [handler.firstFailedAt.getTime(), handler.lastFailedAt.getTime()]);
  const gaveUp = record?.gaveUp;
  return {
    messageId: String(job.id),
    type: typeof data.type === 'string' ? data.type : job.name,
    service,
    source: data.source ?? null,
    reason: reasonOf(job, handlers.length, gaveUp),
    handlers,
    missing: (gaveUp?.missing ?? []).filter((name) => !discarded.includes(name)),
    discarded,
    error: job.failedReason ?? '',
    attempts: job.attemptsMade,
    firstFailedAt: times.length > 0 ? new Date(Math.min(...times)) : failedAt,
    lastFailedAt: times.length > 0 ? new Date(Math.max(...times, failedAt.getTime())) : failedAt,
    gaveUpBy: gaveUp ? { service: gaveUp.service, process: gaveUp.process, version: gaveUp.version } : null,
    key: data.key ?? null,
    headers: typeof data.headers === 'object' && data.headers !== null ? data.headers : null,
    payload: typeof data.payload === 'string' ? data.payload : null,
  };
}

function reasonOf(job: Job, failedHandlers: number, gaveUp: GaveUp | undefined): DeadLetterReason {
  if (gaveUp?.reason === 'handlers-missing') return 'handlers-missing';
  if (/still failed before/.test(job.failedReason ?? '')) return 'still-failing';
  if (/stalled/i.test(job.failedReason ?? '')) return 'worker-died';
  return failedHandlers > 0 ? 'handler-failed' : 'unreadable';
}

export function matchesFilter(letter: DeadLetter, filter: DeadLetterFilter): boolean {
  const handler = filter.handler;
  return (
    (filter.type === undefined || letter.type === filter.type) &&
    (handler === undefined ||
      letter.handlers.some((failed) => failed.name === handler) ||
      letter.missing.includes(handler))
  );
}
