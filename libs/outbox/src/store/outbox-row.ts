import { OutboxMessage } from './outbox-message.entity.js';
import type { LeaseAtInsert } from './outbox-row.insert.js';

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
  /** Written already leased to the process that commits it (`relay.dispatchOnCommit`); set as it is written. */
  leased?: boolean;
}

/** The row as a new entity, for the flushes that write it as a MikroORM change set. */
export function outboxEntityOf(row: OutboxRow, lease?: LeaseAtInsert): OutboxMessage {
  const entity = new OutboxMessage();
  entity.id = row.id;
  entity.type = row.type;
  entity.payload = row.payload;
  entity.headers = row.headers;
  entity.aggregateType = row.aggregateType;
  entity.aggregateId = row.aggregateId;
  entity.key = row.key;
  entity.occurredAt = row.occurredAt;
  entity.availableAt = row.availableAt;
  row.leased = lease?.takes(row) ?? false;
  // This process's clock, not the database's: the lease may end early or late by their skew.
  entity.attempts = row.leased ? 1 : 0;
  entity.lockedUntil = row.leased ? new Date(Date.now() + lease!.leaseMs) : null;
  entity.claimedBy = row.leased ? lease!.relayId : null;
  entity.lastError = null;
  entity.dispatchedAt = null;
  return entity;
}
