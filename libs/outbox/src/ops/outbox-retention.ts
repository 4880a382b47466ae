import { MikroORM } from '@mikro-orm/core';
import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import type { SchedulerRegistry } from '@nestjs/schedule';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { retentionOutage, retentionRecovered } from '../outbox.messages.js';
import { OUTBOX_OPTIONS, OUTBOX_SCHEDULER } from '../outbox.tokens.js';
import { OutboxQueues } from '../routing/outbox-queues.js';
import { errorText } from '../util/error-text.js';
import { OutageLog } from '../util/outage-log.js';
import { RetentionStore, type InboxMark } from './retention.store.js';

/** What one cleanup pass removed. */
export interface RetentionResult {
  /** Dispatched outbox rows older than `retention.dispatchedAfterSeconds`. */
  outboxDeleted: number;
  /** Inbox marks older than `retention.inboxAfterSeconds` whose message can no longer run. */
  inboxDeleted: number;
}

/**
 * Keeps the outbox and inbox tables bounded: every `retention.intervalMs` (when
 * `retention.enabled`) deletes old dispatched rows and old inbox marks in small batches. An
 * inbox mark is kept, however old, while its message's job may still run (waiting, delayed,
 * active, stalled, retried or a dead letter), so a handler that succeeded never runs again.
 * Passes never overlap; a failed pass is logged once per outage and the next interval tries again.
 */
@Injectable()
export class OutboxRetention implements OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('OutboxRetention');
  private readonly store: RetentionStore;
  private readonly retention: ResolvedOutboxOptions['retention'];
  private readonly intervalName: string;
  private readonly outage: OutageLog;
  /** The last pass queued; each pass starts after the one before it settled. */
  private tail: Promise<unknown> = Promise.resolve();
  private queued = 0;
  private stopped = false;

  constructor(
    orm: MikroORM,
    @Inject(OUTBOX_SCHEDULER) private readonly scheduler: SchedulerRegistry,
    private readonly queues: OutboxQueues,
    @Inject(OUTBOX_OPTIONS) options: ResolvedOutboxOptions,
  ) {
    this.store = new RetentionStore(orm, options.tables);
    this.retention = options.retention;
    this.intervalName = `nest-outbox:retention:${options.service}`;
    this.outage = new OutageLog(this.logger, {
      failed: (reason) => retentionOutage(reason, this.retention.intervalMs),
      recovered: retentionRecovered,
    });
  }

  onApplicationBootstrap(): void {
    if (!this.retention.enabled) return;
    this.scheduler.addInterval(
      this.intervalName,
      setInterval(() => this.tick(), this.retention.intervalMs),
    );
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
      () => this.outage.recovered(),
      // At shutdown the queue and pool close under a running pass; that is not an outage.
      (error: unknown) => this.stopped || this.outage.failed(errorText(error)),
    );
  }

  private async pass(): Promise<RetentionResult> {
    const { batchSize, dispatchedAfterSeconds } = this.retention;
    // The outbox first: it needs only PostgreSQL, so it goes on while Redis is down.
    let outboxDeleted = 0;
    while (!this.stopped) {
      const deleted = await this.store.deleteDispatched(dispatchedAfterSeconds, batchSize);
      outboxDeleted += deleted;
      if (deleted < batchSize) break;
    }
    return { outboxDeleted, inboxDeleted: this.stopped ? 0 : await this.deleteOldInboxMarks() };
  }

  /** Walks the old marks a page at a time; those whose message may still run stay and are passed over. */
  private async deleteOldInboxMarks(): Promise<number> {
    const { batchSize, inboxAfterSeconds } = this.retention;
    let deleted = 0;
    let cursor: InboxMark | undefined;
    while (!this.stopped) {
      const marks = await this.store.oldInboxMarks(inboxAfterSeconds, cursor, batchSize);
      if (marks.length === 0) break;
      const live = await this.queues.mayStillRun([...new Set(marks.map((mark) => mark.messageId))]);
      deleted += await this.store.deleteInboxMarks(
        marks.filter((mark) => !live.has(mark.messageId)),
        inboxAfterSeconds,
      );
      cursor = marks[marks.length - 1];
      if (marks.length < batchSize) break;
    }
    return deleted;
  }
}
