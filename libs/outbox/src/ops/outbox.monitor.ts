import { MikroORM } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import type { Queue } from 'bullmq';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { OutboxTimeoutError } from '../outbox.errors.js';
import { OUTBOX_OPTIONS } from '../outbox.tokens.js';
import { OutboxQueues } from '../routing/outbox-queues.js';
import { SubscriptionRegistry } from '../routing/subscription.registry.js';
import { qualifiedTables } from '../store/outbox.tables.js';
import { ProcessCounters, type RelayCounters, type WorkerCounters } from '../telemetry/process-counters.js';

/** Jobs of one consuming service's queue, by state. */
export interface QueueCounts {
  waiting: number;
  active: number;
  /** Retries waiting for their backoff, and messages set aside (waiting for handlers, parked behind their key). */
  delayed: number;
  completed: number;
  /** Dead letters. */
  failed: number;
}

/** Where every message stands, read from PostgreSQL and Redis, so it covers all processes. */
export interface OutboxSnapshot {
  /** Rows in this service's outbox (retention may have removed older ones). */
  written: number;
  /** Not yet handed to BullMQ. */
  pending: number;
  /** Pending rows the relay gave up on after `relay.maxAttempts` refused enqueues; see `last_error`. */
  stuck: number;
  /** Handed to BullMQ (or found no subscriber). */
  dispatched: number;
  /** Dispatched rows no service was subscribed to; `OutboxReplay` can deliver them to one that subscribes later. */
  unrouted: number;
  /** Handler runs recorded in this service's inbox (one per message and handler). */
  handled: number;
  /** This service's own queue. */
  queue: QueueCounts;
  /** Every consuming service's queue (this one's included), by service name. */
  services: Record<string, QueueCounts>;
}

@Injectable()
export class OutboxMonitor {
  private readonly countSql: string;

  constructor(
    private readonly orm: MikroORM,
    private readonly queues: OutboxQueues,
    private readonly registry: SubscriptionRegistry,
    @Inject(OUTBOX_OPTIONS) private readonly options: ResolvedOutboxOptions,
    private readonly counters: ProcessCounters,
  ) {
    const { outbox, inbox } = qualifiedTables(options.tables);
    this.countSql = `select
      (select count(*) from ${outbox})::int as written,
      (select count(*) from ${outbox} where dispatched_at is null)::int as pending,
      (select count(*) from ${outbox}
        where dispatched_at is null and attempts >= ${options.relay.maxAttempts})::int as stuck,
      (select count(*) from ${outbox} where routed_to = '{}')::int as unrouted,
      (select count(*) from ${inbox})::int as handled`;
  }

  /** What this process's relay and worker did since it started (other processes keep their own). */
  processCounters(): { relay: RelayCounters; worker: WorkerCounters } {
    return { relay: { ...this.counters.relay }, worker: { ...this.counters.worker } };
  }

  async snapshot(): Promise<OutboxSnapshot> {
    const [counts, services] = await Promise.all([this.tableCounts(), this.serviceCounts()]);
    return { ...counts, dispatched: counts.written - counts.pending, queue: services[this.options.service], services };
  }

  /**
   * True when every registered handler has run for every message: nothing pending or stuck in
   * this service's outbox, and nothing waiting, running, delayed (retried, waiting for handlers,
   * parked) or dead-lettered in any service's queue. Redis is read before and after PostgreSQL,
   * and the finished-job count must not move, so a message crossing from one store to the other
   * between the reads is not missed.
   */
  async isSettled(): Promise<boolean> {
    const before = await this.serviceCounts();
    if (!Object.values(before).every(settled)) return false;
    if ((await this.tableCounts()).pending !== 0) return false;
    const after = await this.serviceCounts();
    return Object.values(after).every(settled) && finished(before) === finished(after);
  }

  /** Resolves once `isSettled()` holds, checking every `everyMs`; rejects after `timeoutMs`, with the snapshot. */
  async waitUntilSettled(timeoutMs = 30_000, everyMs = 25): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.isSettled())) {
      if (Date.now() > deadline) {
        throw new OutboxTimeoutError(
          `The outbox did not settle within ${timeoutMs} ms: ${JSON.stringify(await this.snapshot())}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  }

  private async tableCounts() {
    const [counts] = await this.orm.em
      .getConnection()
      .execute<Array<{ written: number; pending: number; stuck: number; unrouted: number; handled: number }>>(
        this.countSql,
      );
    return counts;
  }

  private async serviceCounts(): Promise<Record<string, QueueCounts>> {
    const services = new Set([this.options.service, ...(await this.registry.readAll()).keys()]);
    const entries = await Promise.all(
      [...services].sort().map(async (service) => [service, await countsOf(this.queues.of(service))] as const),
    );
    return Object.fromEntries(entries);
  }
}

async function countsOf(queue: Queue): Promise<QueueCounts> {
  const jobs = await queue.getJobCounts(
    'waiting',
    'active',
    'delayed',
    'completed',
    'failed',
    'prioritized',
    'waiting-children',
  );
  return {
    waiting: (jobs.waiting ?? 0) + (jobs.prioritized ?? 0) + (jobs['waiting-children'] ?? 0),
    active: jobs.active ?? 0,
    delayed: jobs.delayed ?? 0,
    completed: jobs.completed ?? 0,
    failed: jobs.failed ?? 0,
  };
}

function settled(queue: QueueCounts): boolean {
  return queue.waiting === 0 && queue.active === 0 && queue.delayed === 0 && queue.failed === 0;
}

function finished(services: Record<string, QueueCounts>): number {
  return Object.values(services).reduce((sum, queue) => sum + queue.completed + queue.failed, 0);
}
