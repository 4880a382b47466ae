import { MikroORM } from '@mikro-orm/core';
import { Inject, Injectable, Logger, type BeforeApplicationShutdown, type OnApplicationBootstrap } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { describe } from '../outbox.errors.js';
import { OUTBOX_OPTIONS, type ResolvedOutboxOptions } from '../outbox.options.js';
import { OutboxQueue } from '../outbox.queue.js';
import { RetentionStore } from './retention.store.js';

/** What one cleanup pass removed. */
export interface RetentionResult {
  /** Dispatched outbox rows older than `retention.dispatchedAfterSeconds`. */
  outboxDeleted: number;
  /** Inbox marks older than `retention.inboxAfterSeconds`. */
  inboxDeleted: number;
}

/**
 * Keeps the outbox and inbox tables bounded: every `retention.intervalMs` (when
 * `retention.enabled`) deletes old dispatched rows and old inbox marks in small batches. Passes
 * never overlap; a failed pass is logged once per outage and the next interval tries again.
 * Safe in many processes at once: batches are chosen with SKIP LOCKED.
 */
@Injectable()
export class OutboxRetention implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('OutboxRetention');
  private readonly store: RetentionStore;
  private readonly retention: ResolvedOutboxOptions['retention'];
  private readonly intervalName: string;
  /** The last pass queued; each pass starts after the one before it settled. */
  private tail: Promise<unknown> = Promise.resolve();
  private queued = 0;
  private stopped = false;
  private outageSince: number | undefined;

  constructor(
    orm: MikroORM,
    private readonly scheduler: SchedulerRegistry,
    private readonly queue: OutboxQueue,
    @Inject(OUTBOX_OPTIONS) options: ResolvedOutboxOptions,
  ) {
    this.store = new RetentionStore(orm, options.tables);
    this.retention = options.retention;
    this.intervalName = `nest-outbox:retention:${options.queueName}`;
  }

  onApplicationBootstrap(): void {
    if (!this.retention.enabled) return;
    this.scheduler.addInterval(this.intervalName, setInterval(() => this.tick(), this.retention.intervalMs));
  }

  /** Stops the schedule and waits for a running pass, which stops between batches; before MikroORM closes its pool. */
  async beforeApplicationShutdown(): Promise<void> {
    this.stopped = true;
    if (this.scheduler.doesExist('interval', this.intervalName)) this.scheduler.deleteInterval(this.intervalName);
    await this.tail;
  }

  /**
   * Runs one cleanup pass now (after a running one, if any) and reports what it removed. Works
   * whether or not the schedule is enabled, e.g. from an operator's job; errors reach the caller.
   */
  runOnce(): Promise<RetentionResult> {
    this.queued++;
    const pass = this.tail.then(() => this.pass());
    this.tail = pass.then(
      () => this.queued--,
      () => this.queued--,
    );
    return pass;
  }

  private tick(): void {
    // A pass longer than the interval is not joined by another one.
    if (this.queued > 0 || this.stopped) return;
    this.runOnce().then(
      () => this.recovered(),
      (error: unknown) => this.failed(error),
    );
  }

  private async pass(): Promise<RetentionResult> {
    const { batchSize, dispatchedAfterSeconds, inboxAfterSeconds } = this.retention;
    const result: RetentionResult = { outboxDeleted: 0, inboxDeleted: 0 };
    // The outbox first: it needs only PostgreSQL, so it goes on while Redis is down.
    result.outboxDeleted = await this.inBatches(() => this.store.deleteDispatched(dispatchedAfterSeconds, batchSize));
    if (this.stopped) return result;
    // Read before any inbox delete: a message leaving the failed set after this read had its
    // marks refreshed first (OutboxDeadLetters), so they are too young for this pass.
    const deadLetters = await this.queue.get().getRanges(['failed'], 0, -1);
    result.inboxDeleted = await this.inBatches(() => this.store.deleteInbox(inboxAfterSeconds, deadLetters, batchSize));
    return result;
  }

  /** Repeats a bounded delete while it comes back full; stops between batches at shutdown. */
  private async inBatches(deleteBatch: () => Promise<number>): Promise<number> {
    let total = 0;
    while (!this.stopped) {
      const deleted = await deleteBatch();
      total += deleted;
      if (deleted < this.retention.batchSize) break;
    }
    return total;
  }

  private failed(error: unknown): void {
    // At shutdown the queue and pool close under a running pass; that is not an outage.
    if (this.stopped || this.outageSince !== undefined) return;
    this.outageSince = Date.now();
    this.logger.error(
      `Retention cleanup failed (${describe(error)}). Old outbox and inbox rows stay until it succeeds; ` +
        `trying again every ${this.retention.intervalMs} ms. Check PostgreSQL and Redis; this is logged once per outage.`,
    );
  }

  private recovered(): void {
    if (this.outageSince === undefined) return;
    this.logger.log(`Retention cleanup recovered after ${((Date.now() - this.outageSince) / 1000).toFixed(1)} s.`);
    this.outageSince = undefined;
  }
}
