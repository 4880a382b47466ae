import {
  helper,
  type EventSubscriber,
  type FlushEventArgs,
  type TransactionEventArgs,
  type UnitOfWork,
} from '@mikro-orm/core';
import type { AggregateRoot } from '@nestjs/cqrs';
import type { CommitSignal } from '../routing/commit.signal.js';
import { OutboxMessage } from '../store/outbox-message.entity.js';
import { forgetEvents, isAggregateRoot } from './aggregate-events.js';
import type { OutboxRowFactory } from './outbox-row.factory.js';

interface Captured {
  aggregate: AggregateRoot;
  events: Set<object>;
}

/**
 * Turns the uncommitted events of every aggregate in a flush into outbox rows of that same flush,
 * so they commit or roll back with the state. Rows join through `uow.computeChangeSet`:
 * `em.persist` inside `onFlush` would be silently dropped.
 */
export class OutboxSubscriber implements EventSubscriber {
  private readonly captured = new WeakMap<UnitOfWork, Captured[]>();
  /** One row per event object, so a flush retried after a failure writes each event once, with one id. */
  private readonly rowOf = new WeakMap<object, OutboxMessage>();
  private wakePending = false;

  constructor(
    private readonly rows: OutboxRowFactory,
    private readonly commits: CommitSignal,
  ) {}

  onFlush({ uow }: FlushEventArgs): void {
    let wroteRows = false;
    const captured: Captured[] = [];
    const seen = new Set<object>();
    for (const changeSet of uow.getChangeSets()) {
      if (changeSet.entity instanceof OutboxMessage) wroteRows = true;
      else this.capture(uow, changeSet.entity, seen, captured);
    }
    // An aggregate that only applied events has no change set, so the identity map is read too.
    for (const entity of uow.getIdentityMap()) this.capture(uow, entity, seen, captured);
    if (captured.length > 0) {
      this.captured.set(uow, captured);
      wroteRows = true;
    }
    if (wroteRows) this.wakePending = true;
  }

  afterFlush({ uow, em }: FlushEventArgs): void {
    const captured = this.captured.get(uow);
    if (captured) {
      this.captured.delete(uow);
      for (const { aggregate, events } of captured) forgetEvents(aggregate, events);
    }
    if (!em.isInTransaction()) this.wake();
  }

  afterTransactionCommit({ transaction }: TransactionEventArgs): void {
    if (!transaction?.savepointName) this.wake();
  }

  private wake(): void {
    if (!this.wakePending) return;
    this.wakePending = false;
    this.commits.notify();
  }

  private capture(uow: UnitOfWork, entity: object, seen: Set<object>, captured: Captured[]): void {
    if (seen.has(entity) || !isAggregateRoot(entity)) return;
    seen.add(entity);
    const events = entity.getUncommittedEvents() as object[];
    if (events.length === 0) return;
    const wrapped = helper(entity);
    const aggregateType = wrapped.__meta.className;
    const aggregateId = primaryKeyOf(wrapped);
    let correlationId: string | undefined;
    for (const event of events) {
      const row = this.rowFor(uow, event, { aggregateType, aggregateId, correlationId });
      correlationId ??= row.id;
      uow.computeChangeSet(row);
    }
    captured.push({ aggregate: entity, events: new Set(events) });
  }

  private rowFor(uow: UnitOfWork, event: object, origin: Parameters<OutboxRowFactory['create']>[1]): OutboxMessage {
    const previous = this.rowOf.get(event);
    if (previous) {
      // The flush that built this row failed; MikroORM may still hold it as managed, which would
      // make the retry think it was written. Reuse its id, but as a fresh, unmanaged row.
      uow.unsetIdentity(previous);
      const row = Object.assign(new OutboxMessage(), previous);
      this.rowOf.set(event, row);
      return row;
    }
    const row = this.rows.create(event, origin);
    this.rowOf.set(event, row);
    return row;
  }
}

function primaryKeyOf(wrapped: { getSerializedPrimaryKey(): unknown }): string | null {
  try {
    const key = wrapped.getSerializedPrimaryKey();
    return key === undefined || key === null || key === '' ? null : String(key);
  } catch {
    // A primary key the database has not generated yet: the row keeps the aggregate type only.
    return null;
  }
}
