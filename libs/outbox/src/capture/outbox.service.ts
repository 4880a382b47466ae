import { MikroORM } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import { publishOutsideContext } from '../outbox.messages.js';
import { OUTBOX_ROW_FACTORY } from '../outbox.tokens.js';
import { currentUnit } from './current-unit.js';
import type { OutboxRowFactory, PublishOptions } from './outbox-row.factory.js';
import { PendingMessages } from './pending-messages.js';

/** Publishes messages that have no aggregate, through the outbox. */
@Injectable()
export class OutboxService {
  constructor(
    private readonly orm: MikroORM,
    @Inject(OUTBOX_ROW_FACTORY) private readonly rows: OutboxRowFactory,
    private readonly pending: PendingMessages,
  ) {}

  /**
   * Adds `event` to the current unit of work (the transaction's inside `em.transactional()`, else
   * the request's EntityManager); it is written by that unit's next flush, in the flush's
   * transaction, and delivered after the commit. A flush that fails keeps it for the next one.
   * Returns the message id. Throws at once when the event cannot be stored.
   */
  publish(event: object, options: PublishOptions = {}): string {
    const unit = currentUnit(this.orm, publishOutsideContext);
    const row = this.rows.create(event, { aggregateType: null, aggregateId: null }, options);
    this.pending.add(unit, { row, event });
    return row.id;
  }
}
