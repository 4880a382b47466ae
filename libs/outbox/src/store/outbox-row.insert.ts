import type { EntityManager, Transaction } from '@mikro-orm/core';
import { OutboxMessage } from './outbox-message.entity.js';

const COLUMNS =
  '"id", "type", "payload", "headers", "aggregate_type", "aggregate_id", "key", "occurred_at", "available_at"';
const ROW = '(?, ?, ?, ?, ?, ?, ?, ?::timestamptz, ?::timestamptz)';

/**
 * Writes outbox rows with one multi-row INSERT in the given transaction, bypassing MikroORM's
 * change sets (their bookkeeping cost more than the row itself). The columns left out take their
 * defaults: `attempts` 0, the lease and dispatch columns null, `seq` the next in commit order.
 */
export async function insertOutboxRows(
  em: EntityManager,
  rows: readonly OutboxMessage[],
  ctx: Transaction | undefined,
): Promise<void> {
  if (rows.length === 0) return;
  const meta = em.getMetadata().get(OutboxMessage);
  const table = meta.schema ? `"${meta.schema}"."${meta.tableName}"` : `"${meta.tableName}"`;
  const params: unknown[] = [];
  for (const row of rows) {
    params.push(
      row.id,
      row.type,
      row.payload,
      row.headers,
      row.aggregateType,
      row.aggregateId,
      row.key,
      row.occurredAt.toISOString(),
      row.availableAt ? row.availableAt.toISOString() : null,
    );
  }
  const sql = `insert into ${table} (${COLUMNS}) values ${Array.from({ length: rows.length }, () => ROW).join(', ')}`;
  await em.getConnection('write').execute(sql, params, 'run', ctx);
}
