import type { UnitOfWork } from '@mikro-orm/core';
import { Injectable } from '@nestjs/common';
import type { OutboxRow } from '../store/outbox-row.js';

/** A message published without an aggregate, waiting for its unit of work to flush. */
export interface PendingMessage {
  row: OutboxRow;
  event: object;
}

/**
 * Messages from `OutboxService.publish()` and the outbox EventBus, per unit of work. Not
 * `em.persist`: after a flush that failed once its INSERT ran, MikroORM holds a persisted row as
 * written and the next flush skips it. Here a message stays until a flush that wrote it succeeds.
 */
@Injectable()
export class PendingMessages {
  private readonly byUnit = new WeakMap<UnitOfWork, PendingMessage[]>();

  add(unit: UnitOfWork, message: PendingMessage): void {
    const pending = this.byUnit.get(unit);
    if (pending) pending.push(message);
    else this.byUnit.set(unit, [message]);
  }

  of(unit: UnitOfWork): PendingMessage[] | undefined {
    return this.byUnit.get(unit);
  }

  /** After a successful flush: drops what it wrote, keeps what was added while it ran. */
  written(unit: UnitOfWork, count: number): void {
    const pending = this.byUnit.get(unit);
    if (!pending) return;
    pending.splice(0, count);
    if (pending.length === 0) this.byUnit.delete(unit);
  }
}
