import type { EntityManager, Transaction } from '@mikro-orm/core';
import type { AbstractSqlConnection } from '@mikro-orm/postgresql';
import { CompiledQuery } from 'kysely';
import { OutboxMessage } from './outbox-message.entity.js';
import type { OutboxRow } from './outbox-row.js';

/** The columns capture writes, in `parametersOf` order, with the cast each parameter takes. */
const COLUMNS: ReadonlyArray<readonly [column: string, cast: string]> = [
  ['id', ''],
  ['type', ''],
  ['payload', ''],
  ['headers', ''],
  ['aggregate_type', ''],
  ['aggregate_id', ''],
  ['key', ''],
  ['occurred_at', '::timestamptz'],
  ['available_at', '::timestamptz'],
];
const COLUMN_LIST = COLUMNS.map(([column]) => `"${column}"`).join(', ');
/** PostgreSQL takes at most 65,535 bind parameters per statement. */
const ROWS_PER_STATEMENT = Math.floor(65_535 / COLUMNS.length);

/**
 * Writes outbox rows with multi-row INSERTs in the given transaction, bypassing MikroORM's change
 * sets (their bookkeeping cost more than the row itself) and its raw `execute`, which prints every
 * value into the SQL text: here the values travel as bind parameters (so MikroORM's query log does
 * not show this statement). The columns left out take their defaults: `attempts` 0, the lease and
 * dispatch columns null, `seq` the next in commit order.
 */
export async function insertOutboxRows(
  em: EntityManager,
  rows: readonly OutboxRow[],
  ctx: Transaction | undefined,
): Promise<void> {
  if (rows.length === 0) return;
  const meta = em.getMetadata().get(OutboxMessage);
  const table = meta.schema ? `"${meta.schema}"."${meta.tableName}"` : `"${meta.tableName}"`;
  const connection = em.getConnection('write') as AbstractSqlConnection;
  // The transaction when there is one, else the pool: both are Kysely executors.
  const executor = (ctx as ReturnType<AbstractSqlConnection['getClient']> | undefined) ?? connection.getClient();
  for (let from = 0; from < rows.length; from += ROWS_PER_STATEMENT) {
    const chunk = rows.slice(from, from + ROWS_PER_STATEMENT);
    const sql = insertSql(table, chunk.length);
    await executor.executeQuery(CompiledQuery.raw(sql, parametersOf(chunk)));
  }
}

function insertSql(table: string, count: number): string {
  const values: string[] = [];
  for (let row = 0; row < count; row++) {
    const first = row * COLUMNS.length + 1;
    values.push(`(${COLUMNS.map(([, cast], column) => `$${first + column}${cast}`).join(', ')})`);
  }
  return `insert into ${table} (${COLUMN_LIST}) values ${values.join(', ')}`;
}

function parametersOf(rows: readonly OutboxRow[]): unknown[] {
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
  return params;
}
