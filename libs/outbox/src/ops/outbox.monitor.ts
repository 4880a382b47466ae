import { MikroORM } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { OutboxTimeoutError } from '../outbox.errors.js';
import { OUTBOX_OPTIONS } from '../outbox.tokens.js';
import { OutboxQueue } from '../routing/outbox.queue.js';
import { qualifiedTables } from '../store/outbox.tables.js';
import { ProcessCounters, type RelayCounters, type WorkerCounters } from '../telemetry/process-counters.js';

/** Where every message stands, read from PostgreSQL and Redis, so it covers all processes. */
export interface OutboxSnapshot {
  /** Rows in the outbox (retention may have removed older ones). */
  written: number;
  /** Not yet handed to BullMQ. */
  pending: number;
  /** Pending rows the relay gave up on after `relay.maxAttempts` refused enqueues; see `last_error`. */
  stuck: number;
  /** Handed to BullMQ. */
  dispatched: number;
  /** Handler runs recorded in the inbox (one per message and handler). */
  handled: number;
  queue: { waiting: number; active: number; delayed: number; completed: number; failed: number };
}

@Injectable()
export class OutboxMonitor {
  private readonly countSql: string;

  constructor(
    private readonly orm: MikroORM,
    private readonly queue: OutboxQueue,
    @Inject(OUTBOX_OPTIONS) options: ResolvedOutboxOptions,
    private readonly counters: ProcessCounters,
  ) {
    const { outbox, inbox } = qualifiedTables(options.tables);
    this.countSql = `select
      (select count(*) from ${outbox})::int as written,
      (select count(*) from ${outbox} where dispatched_at is null)::int as pending,
      (select count(*) from ${outbox}
        where dispatched_at is null and attempts >= ${options.relay.maxAttempts})::int as stuck,
      (select count(*) from ${inbox})::int as handled`;
  }

  /** What this process's relay and worker did since it started (other processes keep their own). */
  processCounters(): { relay: RelayCounters; worker: WorkerCounters } {
    return { relay: { ...this.counters.relay }, worker: { ...this.counters.worker } };
  }

  async snapshot(): Promise<OutboxSnapshot> {
    const [counts, queue] = await Promise.all([this.tableCounts(), this.queueCounts()]);
    return { ...counts, dispatched: counts.written - counts.pending, queue };
  }

  /**
   * True when nothing is pending in the outbox and nothing is waiting, delayed or running in
   * BullMQ. Redis is read before and after PostgreSQL, and the finished-job count must not move,
   * so a message crossing from one store to the other between the reads is not missed.
   */
  async isSettled(): Promise<boolean> {
    const before = await this.queueCounts();
    if (!idle(before)) return false;
    const { pending, stuck } = await this.tableCounts();
    if (pending !== stuck) return false;
    const after = await this.queueCounts();
    return idle(after) && before.completed + before.failed === after.completed + after.failed;
  }

  /** Resolves once `isSettled()` holds, checking every `everyMs`; rejects after `timeoutMs`. */
  async waitUntilSettled(timeoutMs = 30_000, everyMs = 25): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.isSettled())) {
      if (Date.now() > deadline)
        throw new OutboxTimeoutError(
          `The outbox did not settle within ${timeoutMs} ms: ${JSON.stringify(await this.snapshot())}`,
        );
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  }

  private async tableCounts(): Promise<{ written: number; pending: number; stuck: number; handled: number }> {
    const [counts] = await this.orm.em
      .getConnection()
      .execute<Array<{ written: number; pending: number; stuck: number; handled: number }>>(this.countSql);
    return counts;
  }

  private async queueCounts(): Promise<OutboxSnapshot['queue']> {
    const jobs = await this.queue
      .get()
      .getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized', 'waiting-children');
    return {
      waiting: (jobs.waiting ?? 0) + (jobs.prioritized ?? 0) + (jobs['waiting-children'] ?? 0),
      active: jobs.active ?? 0,
      delayed: jobs.delayed ?? 0,
      completed: jobs.completed ?? 0,
      failed: jobs.failed ?? 0,
    };
  }
}

function idle(queue: OutboxSnapshot['queue']): boolean {
  return queue.waiting === 0 && queue.active === 0 && queue.delayed === 0;
}
