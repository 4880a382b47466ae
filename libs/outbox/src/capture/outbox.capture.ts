import { MikroORM, type EventSubscriber } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import { OUTBOX_ROW_FACTORY } from '../outbox.tokens.js';
import { CommitSignal } from '../routing/commit.signal.js';
import { prepareAggregateClass } from './aggregate-events.js';
import { CommitTracker } from './commit-tracker.js';
import type { OutboxRowFactory } from './outbox-row.factory.js';
import { OutboxSubscriber } from './outbox.subscriber.js';
import { PendingMessages } from './pending-messages.js';

/** The capture stage: joins the ORM's flushes and transactions. */
@Injectable()
export class OutboxCapture {
  constructor(
    private readonly orm: MikroORM,
    @Inject(OUTBOX_ROW_FACTORY) private readonly rows: OutboxRowFactory,
    private readonly pending: PendingMessages,
    private readonly commits: CommitSignal,
  ) {
    // Here rather than at init: another module's onModuleInit may load an aggregate and apply an
    // event before ours runs, and a loaded aggregate needs its event list by then.
    for (const meta of orm.getMetadata().getAll().values()) {
      if (typeof meta.class === 'function') prepareAggregateClass(meta.class);
    }
  }

  attach(): void {
    const tracker = new CommitTracker(this.commits);
    const subscribers: EventSubscriber[] = [tracker, new OutboxSubscriber(this.rows, this.pending, tracker)];
    for (const subscriber of subscribers) this.orm.em.getEventManager().registerSubscriber(subscriber);
    // Forks made with `freshEventManager: true` build their event manager from this list.
    this.orm.config.set('subscribers', [...this.orm.config.get('subscribers'), ...subscribers]);
  }
}
