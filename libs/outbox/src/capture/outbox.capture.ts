import { MikroORM, type EventSubscriber } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { EventBus } from '@nestjs/cqrs';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { OUTBOX_OPTIONS, OUTBOX_ROW_FACTORY } from '../outbox.tokens.js';
import { CommitSignal, type CommittedRows } from '../routing/commit.signal.js';
import { insertOutboxRows, type LeaseAtInsert } from '../store/outbox-row.insert.js';
import { OutboxMetrics } from '../telemetry/outbox.metrics.js';
import { prepareAggregateClass } from './aggregate-events.js';
import { CommitOutcomes } from './commit-outcomes.js';
import { CommitTracker } from './commit-tracker.js';
import { OutboxEventPublisher, routeEventBusThroughOutbox } from './outbox-event-bus.js';
import type { OutboxRowFactory } from './outbox-row.factory.js';
import { OutboxSubscriber } from './outbox.subscriber.js';
import { PendingMessages } from './pending-messages.js';
import { FlushBegins } from './flush-begins.js';
import { RowsAtCommit } from './rows-at-commit.js';

/** The capture stage: joins the ORM's flushes and transactions, and, when the app uses one, the cqrs EventBus. */
@Injectable()
export class OutboxCapture {
  constructor(
    private readonly orm: MikroORM,
    @Inject(OUTBOX_ROW_FACTORY) private readonly rows: OutboxRowFactory,
    private readonly pending: PendingMessages,
    private readonly commits: CommitSignal,
    @Inject(OUTBOX_OPTIONS) private readonly options: ResolvedOutboxOptions,
    private readonly moduleRef: ModuleRef,
    private readonly metrics: OutboxMetrics,
  ) {
    // Here rather than at init: another module's onModuleInit may load an aggregate and apply an
    // event before ours runs, and a loaded aggregate needs its event list by then.
    for (const meta of orm.getMetadata().getAll().values()) {
      if (typeof meta.class === 'function') prepareAggregateClass(meta.class);
    }
  }

  /**
   * Joins the ORM's flushes; with `relay.dispatchOnCommit`, writes rows leased to this process and
   * hands them to `dispatchOnCommit` once committed (in the application's own transactions, once
   * PostgreSQL's answer to COMMIT said so). Once the `pg` pool is hooked, a flush that writes rows in a
   * transaction of its own takes two messages: BEGIN with its first statement, its rows with COMMIT.
   */
  async attach(dispatchOnCommit?: CommittedRows & LeaseAtInsert): Promise<void> {
    const tracker = new CommitTracker(this.commits, this.metrics);
    tracker.committedRows = dispatchOnCommit;
    const atCommit = new RowsAtCommit(this.orm);
    const begins = new FlushBegins(this.orm);
    // Only rows leased to this process need the answer to their transaction's COMMIT.
    const outcomes = dispatchOnCommit && new CommitOutcomes(this.orm);
    const flushes = new OutboxSubscriber(
      this.rows,
      this.pending,
      tracker,
      insertOutboxRows,
      {
        rowsAtCommit: () => atCommit.active,
        beginExpected: () => begins.expect(),
        claimBegin: (transaction) => begins.claim(transaction),
        watchCommit: async (transaction) => outcomes?.watch(transaction),
      },
      dispatchOnCommit,
    );
    const subscribers: EventSubscriber[] = [tracker, flushes];
    for (const subscriber of subscribers) this.orm.em.getEventManager().registerSubscriber(subscriber);
    // Forks made with `freshEventManager: true` build their event manager from this list.
    this.orm.config.set('subscribers', [...this.orm.config.get('subscribers'), ...subscribers]);
    const bus = this.options.eventBus ? this.eventBus() : undefined;
    if (bus) routeEventBusThroughOutbox(bus, new OutboxEventPublisher(this.orm, this.rows, this.pending), tracker);
    // After the subscribers, which must be on before any other module flushes: until the hooks are
    // on, a flush sends BEGIN and its rows each in a message of their own.
    await atCommit.start();
    await begins.start();
    await outcomes?.start();
  }

  /** The app's EventBus, when it imports CqrsModule. */
  private eventBus(): EventBus | undefined {
    try {
      return this.moduleRef.get(EventBus, { strict: false });
    } catch {
      return undefined;
    }
  }
}
