import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { OutboxTimeoutError } from '../outbox.errors.js';
import { addBulkTimedOut } from '../outbox.messages.js';
import type { OutboxQueues } from '../routing/outbox-queues.js';
import { jobOptionsOf, retryPolicyOf, type RetryPolicy } from '../routing/retry-policy.js';
import type { OutboxTracing } from '../telemetry/outbox.tracing.js';
import { waitAtMost } from '../util/wait-at-most.js';
import type { RoutedBatch } from './message.router.js';

/** Jobs per addBulk call; a batch is sent as several calls in flight at once. */
const ADD_BULK_CHUNK = 50;
/**
 * Up to this many jobs for one queue go as plain adds issued together: addBulk builds an ioredis
 * pipeline, which copies every BullMQ script onto itself and costs more CPU than a few adds.
 */
const PLAIN_ADDS_UP_TO = 10;

/**
 * How long an enqueue may take before the rows are handed back: well inside the lease, so a hung
 * Redis cannot outlive the claim unnoticed. BullMQ waits for a reconnect rather than failing, and
 * a healthy addBulk takes milliseconds.
 */
export function enqueueTimeoutMs(leaseMs: number): number {
  return Math.min(10_000, Math.max(500, Math.floor(leaseMs / 2)));
}

/**
 * Hands a routed batch to BullMQ: its jobs for every subscribed service's queue, all at once. The
 * job id is the message id, so a re-add (after a crash, or a partial failure here) is a no-op in
 * every queue that already has it: the adds are idempotent per message and consumer.
 */
export class RelayQueue {
  /** For a service that published no retry policy (only older builds registered it): this process's own. */
  private readonly fallback: RetryPolicy;

  constructor(
    private readonly queues: OutboxQueues,
    private readonly options: ResolvedOutboxOptions,
    private readonly tracing: OutboxTracing,
  ) {
    this.fallback = retryPolicyOf(options);
  }

  async add(batch: RoutedBatch, timeoutMs: number): Promise<void> {
    const adds = [...batch.jobsByService].map(async ([service, jobs]) => {
      const queue = this.queues.of(service);
      // A `send` span per traced message, ended when its addBulk answers (even after the timeout below).
      const endSends = this.tracing.startSends(queue.name, jobs);
      try {
        // The consuming service's retry rules, not this producer's: the job is that service's to retry.
        const opts = jobOptionsOf(
          batch.retryByService.get(service) ?? this.fallback,
          this.options.keepCompletedSeconds,
        );
        const bulk = jobs.map(({ id, data }) => ({ name: data.type, data, opts: { ...opts, jobId: id } }));
        // Several addBulk calls issued together, in order, on one connection: Redis runs the
        // first while this process still builds the next, instead of one waiting for the other.
        const chunks: Promise<unknown>[] = [];
        for (let from = 0; from < bulk.length; from += ADD_BULK_CHUNK) {
          const chunk = bulk.slice(from, from + ADD_BULK_CHUNK);
          if (chunk.length <= PLAIN_ADDS_UP_TO) {
            for (const job of chunk) chunks.push(queue.add(job.name, job.data, job.opts));
          } else {
            chunks.push(queue.addBulk(chunk));
          }
        }
        await Promise.all(chunks);
        endSends();
      } catch (error) {
        endSends(error);
        throw error;
      }
    });
    // A late success is harmless (job ids dedupe); a late failure changes nothing.
    const answered = await waitAtMost(
      Promise.all(adds).then(() => true),
      timeoutMs,
      false,
    );
    if (!answered) throw new OutboxTimeoutError(addBulkTimedOut(timeoutMs));
  }

  /** Whether Redis answers now: tells a refused add from an outage. */
  answers(): Promise<boolean> {
    return this.queues.answers();
  }
}
