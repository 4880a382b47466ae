import { randomBytes, randomUUID } from 'node:crypto';
import pg from 'pg';
import { SomethingHappened } from '../bench.app.js';
import { now } from '../harness.js';
import { median } from './stats.js';

const COLUMNS =
  '"id", "type", "payload", "headers", "aggregate_type", "aggregate_id", "key", "occurred_at", "available_at"';

/**
 * What PostgreSQL alone takes to store a flush's outbox rows, in ms: on a bare `pg` client, a
 * transaction that inserts the flush's aggregates and then sends the statement capture sends with
 * COMMIT (libs/outbox/src/store/outbox-row.insert.ts: values printed in), against the same
 * transaction without the rows; medians, the two alternating. Both write, so both COMMITs flush
 * the WAL. No ORM and none of the library's JavaScript. A reference, not a floor: capture also
 * sends BEGIN with the flush's first statement, a round trip this transaction still pays.
 */
export async function rowsInsertMs(databaseUrl: string, rows: number, transactions: number): Promise<number> {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  const client = await pool.connect();
  try {
    const times = { with: [] as number[], without: [] as number[] };
    for (let i = 0; i < transactions; i++) {
      for (const side of i % 2 === 0 ? (['with', 'without'] as const) : (['without', 'with'] as const)) {
        const aggregates = aggregatesText(rows);
        const last = side === 'with' ? `${insertText(rows)};\ncommit` : 'commit';
        const started = now();
        await client.query('begin');
        await client.query(aggregates);
        await client.query(last);
        times[side].push(now() - started);
      }
    }
    return median(times.with) - median(times.without);
  } finally {
    client.release();
    await pool.end();
  }
}

/** The bench's aggregates, as the flush inserts them (BenchAggregate.create). */
function aggregatesText(count: number): string {
  const values: string[] = [];
  const placedAt = new Date().toISOString();
  for (let n = 0; n < count; n++)
    values.push(`('${randomUUID()}', 'customer-${n % 100}', ${1000 + n}, 'placed', '${placedAt}')`);
  return `insert into "bench_aggregate" ("id", "customer_id", "total_cents", "status", "placed_at") values ${values.join(', ')}`;
}

/** The rows the bench's flushes write: one SomethingHappened per aggregate, headers as capture makes them. */
function insertText(count: number): string {
  const values: string[] = [];
  for (let n = 0; n < count; n++) {
    const id = timeOrderedId();
    const aggregateId = randomUUID();
    const payload = JSON.stringify(new SomethingHappened(aggregateId, 0, now()));
    const occurredAt = new Date().toISOString();
    const headers = JSON.stringify({ messageId: id, correlationId: id, occurredAt });
    values.push(
      `('${id}', 'bench.something-happened.v1', '${payload}', '${headers}', 'BenchAggregate', '${aggregateId}', ` +
        `'BenchAggregate:${aggregateId}', '${occurredAt}'::timestamptz, null)`,
    );
  }
  return `insert into "outbox_message" (${COLUMNS}) values ${values.join(', ')}`;
}

/** A UUID v7 as capture makes them (time first), so the primary key index grows at its end as it does there. */
function timeOrderedId(): string {
  const ms = Date.now().toString(16).padStart(12, '0');
  const random = randomBytes(10).toString('hex');
  const variant = (8 | (parseInt(random[3], 16) & 3)).toString(16);
  return `${ms.slice(0, 8)}-${ms.slice(8)}-7${random.slice(0, 3)}-${variant}${random.slice(4, 7)}-${random.slice(7, 19)}`;
}
