import type { Job } from 'bullmq';
import { isFailureRecord } from '../message/failure-record.js';
import type { OutboxHeaders } from '../message/message-headers.js';

/** A message BullMQ gave up on: its last attempt failed, or it could not be read at all. */
export interface DeadLetter {
  /** The outbox message id (also the BullMQ job id). */
  messageId: string;
  /** Stable event type name. */
  type: string;
  /** Class name of the handler that failed; `null` when the message itself could not be read. */
  handler: string | null;
  /** The error of the last failure. */
  error: string;
  /** Delivery attempts made. */
  attempts: number;
  firstFailedAt: Date;
  lastFailedAt: Date;
  /** Correlation, causation and application headers; `null` when the job carries none. */
  headers: OutboxHeaders | null;
}

/** Selects dead letters; every given field must match. */
export interface DeadLetterFilter {
  /** Event type name, as in `DeadLetter.type`. */
  type?: string;
  /** Handler class name, as in `DeadLetter.handler`. */
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
export function toDeadLetter(job: Job): DeadLetter {
  const data = (typeof job.data === 'object' && job.data !== null ? job.data : {}) as {
    type?: unknown;
    headers?: unknown;
  };
  const record = isFailureRecord(job.progress) ? job.progress : undefined;
  const failedAt = new Date(job.finishedOn ?? job.processedOn ?? job.timestamp);
  return {
    messageId: String(job.id),
    type: typeof data.type === 'string' ? data.type : job.name,
    handler: record?.handler ?? null,
    error: record?.error ?? job.failedReason ?? '',
    attempts: job.attemptsMade,
    firstFailedAt: record ? new Date(record.firstFailedAt) : failedAt,
    lastFailedAt: record ? new Date(record.lastFailedAt) : failedAt,
    headers: typeof data.headers === 'object' && data.headers !== null ? (data.headers as OutboxHeaders) : null,
  };
}

export function matchesFilter(letter: DeadLetter, filter: DeadLetterFilter): boolean {
  return (
    (filter.type === undefined || letter.type === filter.type) &&
    (filter.handler === undefined || letter.handler === filter.handler)
  );
}
