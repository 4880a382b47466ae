import type { EntityManager, Transaction } from '@mikro-orm/core';
import type { AbstractSqlConnection } from '@mikro-orm/postgresql';
import { CompiledQuery } from 'kysely';
import { OutboxMessage } from './outbox-message.entity.js';
import type { OutboxRow } from './outbox-row.js';
import { isoTime } from '../util/iso-time.js';

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
/** With `relay.dispatchOnCommit`, the lease columns follow: written already claimed by the committing process. */
const LEASE_COLUMNS = ['claimed_by', 'locked_until', 'attempts'];
const COLUMN_LIST = COLUMNS.map(([column]) => `"${column}"`).join(', ');
const LEASED_COLUMN_LIST = [...COLUMNS.map(([column]) => column), ...LEASE_COLUMNS].map((c) => `"${c}"`).join(', ');
/** PostgreSQL takes at most 65,535 bind parameters per statement. */
const ROWS_PER_STATEMENT = Math.floor(65_535 / (COLUMNS.length + LEASE_COLUMNS.length));

/**
 * The statement's own time, not its transaction's start: a long transaction must not commit rows
 * whose lease already ran out.
 */
const LEASE_FROM = 'clock_timestamp()';

/**
 * The lease rows are written with when the committing process enqueues them itself after the
 * commit (`relay.dispatchOnCommit`): the relay's claim with its first attempt, so no relay takes a
 * row unless the lease runs out or is given up. `takes` picks the rows; each row written records
 * the answer in `leased`.
 */
export interface LeaseAtInsert {
  relayId: string;
  leaseMs: number;
  takes(row: OutboxRow): boolean;
}

/**
 * Marks an INSERT that may wait for its transaction's COMMIT and travel with it (capture's
 * `RowsAtCommit`). A comment: without the hook, the statement runs as it is.
 */
export const AT_COMMIT = '/* nest-outbox: rows at commit */ ';
/**
 * Up to this many rows, the values are printed into the statement: plain text, which costs less
 * than as many bind parameters (which `pg` prepares one by one) and can share a message with
 * COMMIT. In raw `pg` runs (4 clients, 1 to 50 rows, BEGIN + an INSERT before) it beat bind
 * parameters plus their round trip at every size; larger flushes keep bind parameters.
 */
const ROWS_IN_TEXT = 100;

/**
 * Writes outbox rows with multi-row INSERTs in the given transaction, bypassing MikroORM's change
 * sets (their bookkeeping cost more than the row itself) and its query log. The columns left out
 * take their defaults: `attempts` 0 and the lease columns null unless `lease` takes the row, the
 * dispatch columns null, `seq` the next in commit order.
 */
export async function insertOutboxRows(
  em: EntityManager,
  rows: readonly OutboxRow[],
  ctx: Transaction | undefined,
  /** The transaction commits next, and its COMMIT may carry the rows. */
  atCommit = false,
  lease?: LeaseAtInsert,
): Promise<void> {
  if (rows.length === 0) return;
  for (const row of rows) row.leased = lease?.takes(row) ?? false;
  const meta = em.getMetadata().get(OutboxMessage);
  const table = meta.schema ? `"${meta.schema}"."${meta.tableName}"` : `"${meta.tableName}"`;
  const connection = em.getConnection('write') as AbstractSqlConnection;
  // The transaction when there is one, else the pool: both are Kysely executors.
  const executor = (ctx as ReturnType<AbstractSqlConnection['getClient']> | undefined) ?? connection.getClient();
  const text = rows.length <= ROWS_IN_TEXT ? insertSqlWithValues(table, rows, lease) : undefined;
  if (text !== undefined) {
    await executor.executeQuery(CompiledQuery.raw(atCommit && ctx ? `${AT_COMMIT}${text}` : text));
    return;
  }
  for (let from = 0; from < rows.length; from += ROWS_PER_STATEMENT) {
    const chunk = rows.slice(from, from + ROWS_PER_STATEMENT);
    const sql = insertSql(table, chunk.length, lease !== undefined);
    await executor.executeQuery(CompiledQuery.raw(sql, parametersOf(chunk, lease)));
  }
}

function insertSql(table: string, count: number, leased: boolean): string {
  const values: string[] = [];
  const width = COLUMNS.length + (leased ? LEASE_COLUMNS.length : 0);
  for (let row = 0; row < count; row++) {
    const first = row * width + 1;
    const columns = COLUMNS.map(([, cast], column) => `$${first + column}${cast}`);
    if (leased) {
      const next = first + COLUMNS.length;
      columns.push(
        `$${next}::text`,
        `${LEASE_FROM} + $${next + 1}::int * interval '1 millisecond'`,
        `$${next + 2}::int`,
      );
    }
    values.push(`(${columns.join(', ')})`);
  }
  return `insert into ${table} (${leased ? LEASED_COLUMN_LIST : COLUMN_LIST}) values ${values.join(', ')}`;
}

function parametersOf(rows: readonly OutboxRow[], lease: LeaseAtInsert | undefined): unknown[] {
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
      isoTime(row.occurredAt),
      row.availableAt ? row.availableAt.toISOString() : null,
    );
    if (!lease) continue;
    if (row.leased) params.push(lease.relayId, lease.leaseMs, 1);
    else params.push(null, null, 0);
  }
  return params;
}

/**
 * The INSERT with its values printed in, in `parametersOf`'s order. Undefined when a value is not
 * a string or holds a NUL character, which a simple-protocol message cannot carry (PostgreSQL
 * refuses it in text either way; with bind parameters it says so in its own error): those rows
 * go as bind parameters, as `pg` converts them.
 */
function insertSqlWithValues(
  table: string,
  rows: readonly OutboxRow[],
  lease: LeaseAtInsert | undefined,
): string | undefined {
  // One string built in place: this runs on the request's path, once per flush with rows.
  let sql = `insert into ${table} (${lease ? LEASED_COLUMN_LIST : COLUMN_LIST}) values `;
  const leased = lease && `, ${literal(lease.relayId)}, ${LEASE_FROM} + interval '${lease.leaseMs} milliseconds', 1`;
  for (let index = 0; index < rows.length; index++) {
    const row = rows[index];
    // A key from `publish()` is the caller's value: not every caller passes a string.
    if (
      !isPrintable(row.id) ||
      !isPrintable(row.type) ||
      !isPrintable(row.payload) ||
      !isPrintable(row.headers) ||
      !isPrintable(row.aggregateType) ||
      !isPrintable(row.aggregateId) ||
      !isPrintable(row.key)
    ) {
      return undefined;
    }
    const printed =
      `(${literal(row.id)}, ${literal(row.type)}, ${literal(row.payload)}, ${literal(row.headers)}, ` +
      `${literal(row.aggregateType)}, ${literal(row.aggregateId)}, ${literal(row.key)}, ` +
      `'${isoTime(row.occurredAt)}'::timestamptz, ` +
      `${row.availableAt ? `'${row.availableAt.toISOString()}'::timestamptz` : 'null'}` +
      `${!lease ? '' : row.leased ? leased : ', null, null, 0'})`;
    sql += index === 0 ? printed : `, ${printed}`;
  }
  return sql;
}

/** Null, or a string a simple-protocol message can carry (no NUL character). */
function isPrintable(value: unknown): boolean {
  return value === null || (typeof value === 'string' && !value.includes('\0'));
}

/** A string literal whatever `standard_conforming_strings` is: E'…' with backslashes doubled when it has any. */
function literal(value: string | null): string {
  if (value === null) return 'null';
  const text = value.includes("'") ? value.replaceAll("'", "''") : value;
  return value.includes('\\') ? `E'${text.replaceAll('\\', '\\\\')}'` : `'${text}'`;
}
