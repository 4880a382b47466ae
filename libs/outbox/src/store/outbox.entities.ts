import { EntitySchema } from '@mikro-orm/core';
import type { OutboxTableNames } from '../options/outbox-options.interface.js';
import { resolveTableNames } from '../options/table-names.js';
import { JsonTextType } from './json-text.type.js';
import { InboxMessage, OutboxMessage } from './outbox-message.entity.js';

/**
 * The outbox and inbox entities, for MikroORM's `entities` list. Pass the same `tables` as to
 * `OutboxModule.forRoot()` when you rename them; the module checks at boot that both agree.
 */
export function outboxEntities(tables: OutboxTableNames = {}): EntitySchema[] {
  const names = resolveTableNames(tables);
  const outbox = new EntitySchema<OutboxMessage>({
    class: OutboxMessage,
    tableName: names.outbox,
    schema: names.schema,
    properties: {
      id: { type: 'uuid', primary: true, fieldName: 'id' },
      type: { type: 'text', fieldName: 'type' },
      payload: { type: JsonTextType, fieldName: 'payload' },
      headers: { type: JsonTextType, fieldName: 'headers' },
      aggregateType: { type: 'text', nullable: true, fieldName: 'aggregate_type' },
      aggregateId: { type: 'text', nullable: true, fieldName: 'aggregate_id' },
      occurredAt: { type: 'datetime', columnType: 'timestamptz', fieldName: 'occurred_at' },
      availableAt: { type: 'datetime', columnType: 'timestamptz', nullable: true, fieldName: 'available_at' },
      attempts: { type: 'integer', fieldName: 'attempts', default: 0 },
      lockedUntil: { type: 'datetime', columnType: 'timestamptz', nullable: true, fieldName: 'locked_until' },
      lastError: { type: 'text', nullable: true, fieldName: 'last_error' },
      dispatchedAt: { type: 'datetime', columnType: 'timestamptz', nullable: true, fieldName: 'dispatched_at' },
      claimedBy: { type: 'text', nullable: true, fieldName: 'claimed_by' },
      key: { type: 'text', nullable: true, fieldName: 'key' },
    },
  });
  const inbox = new EntitySchema<InboxMessage>({
    class: InboxMessage,
    tableName: names.inbox,
    schema: names.schema,
    properties: {
      messageId: { type: 'uuid', primary: true, fieldName: 'message_id' },
      handler: { type: 'text', primary: true, fieldName: 'handler' },
      processedAt: { type: 'datetime', columnType: 'timestamptz', fieldName: 'processed_at' },
    },
  });
  return [outbox as EntitySchema, inbox as EntitySchema];
}
