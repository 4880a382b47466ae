import { OutboxMessage } from './outbox-message.entity.js';

/**
 * The columns capture writes for one message, as a plain object. Not an `OutboxMessage` entity:
 * MikroORM gives an entity's properties prototype setters that redefine each property on the
 * instance at its first assignment, which cost more than the rest of building the row.
 */
export interface OutboxRow {
  id: string;
  type: string;
  payload: string;
  headers: string;
  aggregateType: string | null;
  aggregateId: string | null;
  key: string | null;
  occurredAt: Date;
  availableAt: Date | null;
}

/** The row as a new entity, for the flushes that write it as a MikroORM change set. */
export function outboxEntityOf(row: OutboxRow): OutboxMessage {
  const entity = new OutboxMessage();
  Object.assign(entity, row);
  entity.attempts = 0;
  entity.lockedUntil = null;
  entity.lastError = null;
  entity.dispatchedAt = null;
  return entity;
}
