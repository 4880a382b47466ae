import type { OutboxHeaders } from '../message/message-headers.js';

/**
 * What the relay puts on a BullMQ job in a consuming service's queue: the message as stored
 * (payload and headers as written), where it comes from, and what this service owes it.
 */
export interface OutboxJobData {
  /** Stable event type name. */
  type: string;
  /** The event's JSON text, passed through from PostgreSQL unparsed. */
  payload: string;
  headers: OutboxHeaders;
  aggregateType: string | null;
  aggregateId: string | null;
  /** Ordering key (aggregate type and id, or `publish({ key })`); `null` when the message has none. */
  key?: string | null;
  /** The service whose outbox wrote the message. */
  source?: string;
  /**
   * Every handler this service had registered for the type when the relay routed the message:
   * each must run once, whichever process takes the job. Absent on jobs from older relays.
   */
  handlers?: string[];
  /** Position of this message in its key's sequence, per ordered handler (1, 2, 3… with no gaps). */
  order?: Record<string, number>;
  /** Set by an operator: handlers given up for this message (dead-letter discard per handler). */
  discarded?: string[];
  /** Set by an operator: run only these handlers on the next attempt (dead-letter retry per handler). */
  retryOnly?: string[];
  /** Set by the worker while the message waits for a process that has all its handlers. */
  waitingSince?: number;
  /** Times the message was set aside (handed back or parked), which spaces its next wake-ups. */
  setAside?: number;
}
