import type { JobsOptions, Queue } from 'bullmq';
import type { OutboxJobData } from '../message/message-headers.js';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { OutboxTimeoutError } from '../outbox.errors.js';
import { addBulkTimedOut } from '../outbox.messages.js';
import { waitAtMost } from '../util/wait-at-most.js';
import type { ClaimedRow } from './relay.store.js';

/** Hands claimed rows to BullMQ in one pipeline; the job id is the message id, so a re-add is a no-op. */
export class RelayQueue {
  private readonly jobOptions: JobsOptions;

  constructor(
    private readonly queue: Queue<OutboxJobData>,
    /** Whether Redis answers now: tells a refused add from an outage. */
    readonly answers: () => Promise<boolean>,
    options: ResolvedOutboxOptions,
  ) {
    this.jobOptions = {
      attempts: options.worker.attempts,
      backoff: {
        type: options.worker.backoff.type,
        delay: options.worker.backoff.delayMs,
        jitter: options.worker.backoff.jitter,
      },
      // Kept at least as long as the lease, so a batch re-dispatched after a crash is recognised.
      removeOnComplete: { age: options.keepCompletedSeconds },
      // Failed jobs are the dead letters: kept until someone retries or discards them.
      removeOnFail: false,
    };
  }

  async add(rows: readonly ClaimedRow[], timeoutMs: number): Promise<void> {
    const jobs = rows.map((row) => ({
      name: row.type,
      data: {
        type: row.type,
        payload: row.payload,
        headers: JSON.parse(row.headers) as OutboxJobData['headers'],
        aggregateType: row.aggregate_type,
        aggregateId: row.aggregate_id,
      },
      opts: { ...this.jobOptions, jobId: row.id },
    }));
    // A late success is harmless (job ids dedupe); a late failure changes nothing.
    const answered = await waitAtMost(
      this.queue.addBulk(jobs).then(() => true),
      timeoutMs,
      false,
    );
    if (!answered) throw new OutboxTimeoutError(addBulkTimedOut(timeoutMs));
  }
}
