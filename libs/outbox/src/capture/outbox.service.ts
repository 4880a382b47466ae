import { MikroORM, type EntityManager } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import { OutboxSetupError } from '../outbox.errors.js';
import { publishOutsideContext } from '../outbox.messages.js';
import { OUTBOX_ROW_FACTORY } from '../outbox.tokens.js';
import type { OutboxRowFactory, PublishOptions } from './outbox-row.factory.js';

/** Publishes messages that have no aggregate, through the outbox. */
@Injectable()
export class OutboxService {
  constructor(
    private readonly orm: MikroORM,
    @Inject(OUTBOX_ROW_FACTORY) private readonly rows: OutboxRowFactory,
  ) {}

  /**
   * Adds `event` to the current EntityManager context (the request's or the transaction's fork);
   * it is written at that context's next flush, in the flush's transaction, and delivered after
   * the commit. Returns the message id. Throws at once when the event cannot be stored.
   */
  publish(event: object, options: PublishOptions = {}): string {
    const row = this.rows.create(event, { aggregateType: null, aggregateId: null }, options);
    this.context().persist(row);
    return row.id;
  }

  private context(): EntityManager {
    try {
      return this.orm.em.getContext();
    } catch (error) {
      throw new OutboxSetupError(publishOutsideContext(), { cause: error });
    }
  }
}
