import { Utils, type MikroORM } from '@mikro-orm/core';
import type { EventBus, IEvent, IEventPublisher } from '@nestjs/cqrs';
import { eventBusOutsideContext } from '../outbox.messages.js';
import { holdEvents, isAggregate } from './aggregate-events.js';
import type { CommitTracker } from './commit-tracker.js';
import { currentUnit } from './current-unit.js';
import type { OutboxRowFactory } from './outbox-row.factory.js';
import type { PendingMessages } from './pending-messages.js';

/**
 * cqrs's EventBus publisher, replaced: an event published inside a unit of work becomes an outbox
 * row of it, instead of running handlers in memory before anything committed.
 *
 * - Published by an aggregate entity (its merged `publish`, `commit()`, `autoCommit`): kept with
 *   the aggregate and written by its next flush, with its type and id, like its uncommitted events.
 * - Anything else: a row of the current unit of work (as `OutboxService.publish()`), written by
 *   its next flush. Outside any unit of work it throws: there is nothing to write it with.
 */
export class OutboxEventPublisher implements IEventPublisher {
  constructor(
    private readonly orm: MikroORM,
    private readonly rows: OutboxRowFactory,
    private readonly pending: PendingMessages,
  ) {}

  publish<T extends IEvent>(event: T, dispatcher?: unknown): void {
    this.publishAll([event], dispatcher);
  }

  publishAll<T extends IEvent>(events: T[], dispatcher?: unknown): void {
    // commit() with nothing uncommitted publishes an empty list, wherever it runs.
    if (events.length === 0) return;
    if (Utils.isEntity(dispatcher) && isAggregate(dispatcher)) {
      holdEvents(dispatcher, events);
      return;
    }
    const unit = currentUnit(this.orm, eventBusOutsideContext);
    // Every row is built (and checked) before any is added: publishAll writes all or nothing.
    const origin = { aggregateType: null, aggregateId: null, correlationId: undefined as string | undefined };
    const messages = events.map((event) => {
      const row = this.rows.create(event, origin);
      origin.correlationId ??= row.id;
      return { row, event };
    });
    for (const message of messages) this.pending.add(unit, message);
  }
}

/**
 * Puts the outbox behind a cqrs EventBus.
 *
 * Its `register` is switched off: cqrs would bind every `@EventsHandler` to the in-memory stream,
 * and the outbox already runs each one, once, through its worker. The stream itself stays for
 * sagas and other listeners: it carries each event once its transaction committed.
 */
export function routeEventBusThroughOutbox(bus: EventBus, publisher: OutboxEventPublisher, tracker: CommitTracker) {
  bus.publisher = publisher;
  bus.register = () => undefined;
  tracker.committedEvents = {
    wanted: () => bus.subject$.observed,
    emit: (events) => {
      for (const event of events) bus.subject$.next(event);
    },
  };
}
