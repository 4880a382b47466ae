import { MikroORM } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import { qualifiedTables } from '../message/outbox.tables.js';
import { OUTBOX_OPTIONS, type ResolvedOutboxOptions } from '../outbox.options.js';
import { OutboxQueue } from '../outbox.queue.js';

/** Where every message stands, read from PostgreSQL and Redis, so it covers all processes. */
export interface OutboxSnapshot {
  /** Rows in the outbox (retention may have removed older ones). */
  written: number;
  /** Not yet handed to BullMQ. */
  pending: number;
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
  ) {
    const { outbox, inbox } = qualifiedTables(options.tables);
    this.countSql = `select
      (select count(*) from ${outbox})::int as written,
      (select count(*) from ${outbox} where dispatched_at is null)::int as pending,
      (select count(*) from ${inbox})::int as handled`;
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
    const { pending } = await this.tableCounts();
    if (pending !== 0) return false;
    const after = await this.queueCounts();
    return idle(after) && before.completed + before.failed === after.completed + after.failed;
  }

  private async tableCounts(): Promise<{ written: number; pending: number; handled: number }> {
    const [counts] = await this.orm.em.getConnection().execute<Array<{ written: number; pending: number; handled: number }>>(this.countSql);
    return counts;
  }

  private async queueCounts(): Promise<OutboxSnapshot['queue']> {
    const jobs = await this.queue.get().getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed', 'prioritized', 'waiting-children');
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
