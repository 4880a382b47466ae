import { randomUUID } from 'node:crypto';
import type { JobsOptions } from 'bullmq';
import type { OutboxJobData } from 'nest-outbox';
import { SomethingHappened } from './bench.app.js';

/**
 * Jobs exactly as the relay makes them — same data shape, payload text and job options — for the
 * baselines that put jobs on BullMQ without the outbox (raw BullMQ, naive dual write, consume
 * ceiling), so only the outbox's own work differs between them and the outbox.
 */

export const EVENT_TYPE = 'bench.something-happened.v1';

/** The job options the relay gives a job with default outbox options (libs/outbox/src/relay/relay.queue.ts). */
export function relayJobOptions(): JobsOptions {
  return {
    attempts: 5,
    backoff: { type: 'exponential', delay: 1000, jitter: 0.25 },
    removeOnComplete: { age: 86_400 },
    removeOnFail: false,
  };
}

export interface BulkJob {
  name: string;
  data: OutboxJobData;
  opts: JobsOptions;
}

/** One job carrying `event` (or a fresh bench event), with a fresh message id as its job id. */
export function jobFor(
  event: object = new SomethingHappened(randomUUID(), 0, 0),
  aggregateId: string = randomUUID(),
): BulkJob {
  const id = randomUUID();
  return {
    name: EVENT_TYPE,
    data: {
      type: EVENT_TYPE,
      payload: JSON.stringify(event),
      headers: { messageId: id, correlationId: id, occurredAt: new Date().toISOString() },
      aggregateType: 'BenchAggregate',
      aggregateId,
    },
    opts: { ...relayJobOptions(), jobId: id },
  };
}

export function jobs(n: number): BulkJob[] {
  return Array.from({ length: n }, () => jobFor());
}

/** Queues of the baselines (under the run's prefix, like the outbox's own). */
export const RAW_QUEUE = 'raw';
export const NAIVE_QUEUE = 'naive';
export const CEILING_QUEUE = 'ceiling';

/** Connection options for BullMQ queues and workers the bench owns (BullMQ closes them itself). */
export function redisConnection(redisUrl: string) {
  const url = new URL(redisUrl);
  return { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null };
}

/** The library's inbox mark (libs/outbox/src/consume/inbox.store.ts), for the baselines' handler transactions. */
export const INBOX_MARK_SQL = `insert into inbox_message (message_id, handler) values (?, ?)
  on conflict do nothing returning 1 as fresh`;
