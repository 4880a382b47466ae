import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { outboxSchemaSql } from 'nest-outbox';
import { databaseUrl, withConnection } from '../../test/support/database.js';

/**
 * The run's database: made fresh for each run, with the outbox tables and the bench's aggregate
 * table. Its name carries TEST_DB_PREFIX and a hash of this checkout's path (and a quick run's pid),
 * so two checkouts — or a quick run inside `npm test` during a full run — never share one.
 */
export function benchDatabaseName(quick: boolean): string {
  const prefix = (process.env.TEST_DB_PREFIX ?? 'nest_outbox').toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const checkout = createHash('sha1')
    .update(fileURLToPath(new URL('../../../', import.meta.url)))
    .digest('hex')
    .slice(0, 6);
  return quick ? `${prefix}_bench_quick_${process.pid}` : `${prefix}_bench_${checkout}`;
}

/** Drops and recreates database `name`, then creates the outbox tables and the bench's one table. */
export async function freshBenchDatabase(adminUrl: string, name: string): Promise<string> {
  await withConnection(adminUrl, async (execute) => {
    await execute(`drop database if exists "${name}" with (force)`);
    await execute(`create database "${name}"`);
  });
  const url = databaseUrl(name, adminUrl);
  await withConnection(url, async (execute) => {
    for (const statement of outboxSchemaSql()) await execute(statement);
    await execute(`create table bench_aggregate ("id" uuid primary key, "customer_id" text not null,
      "total_cents" int not null, "status" text not null, "placed_at" timestamptz not null)`);
  });
  return url;
}

/**
 * A consuming service's own database beside the run's (its inbox lives there, as in a deployment):
 * named after the run's database and the service, made fresh like the run's. Returns its name and URL.
 */
export async function freshServiceDatabase(runUrl: string, service: string): Promise<{ name: string; url: string }> {
  const run = new URL(runUrl).pathname.slice(1);
  const name = `${run}_${service}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  const url = await freshBenchDatabase(databaseUrl('postgres', runUrl), name);
  return { name, url };
}

/** Drops a database made by freshServiceDatabase. */
export async function dropServiceDatabase(runUrl: string, name: string): Promise<void> {
  await dropDatabase(databaseUrl('postgres', runUrl), name);
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withConnection(adminUrl, (execute) => execute(`drop database if exists "${name}" with (force)`));
}

/** Every measurement starts from empty tables, so none measures rows another one left behind. */
export async function emptyTables(url: string): Promise<void> {
  await withConnection(url, (execute) => execute('truncate outbox_message, inbox_message, bench_aggregate'));
}

/**
 * Rows per distinct `dispatched_at` among rows written since `since`: every relay statement that
 * marks rows stamps its whole batch with one now(), so this is the mean batch the relay moved.
 */
export async function relayBatches(url: string, since: Date): Promise<{ batches: number; rows: number }> {
  return withConnection(url, async (execute) => {
    const [row] = await execute(
      `select count(distinct dispatched_at)::int as batches, count(*)::int as rows
       from outbox_message where occurred_at >= ? and dispatched_at is not null`,
      [since],
    );
    return { batches: row.batches, rows: row.rows };
  });
}

/**
 * Gathers PostgreSQL's statistics on every table of `url`'s database, as autovacuum does within a
 * minute of traffic. A table emptied by TRUNCATE has none, and then the planner takes the relay's
 * claim through a bitmap scan of the pending index, which visits every row version a mark left
 * behind, on every claim, until the table is vacuumed: at one row per claim that made the claim
 * cost PostgreSQL 1.1 to 2.0 ms of CPU instead of 0.6, growing with the table. A deployment's
 * table is measured in that steady state, not in its first minute.
 */
export async function analyzeTables(url: string): Promise<void> {
  await withConnection(url, (execute) => execute('analyze'));
}

/**
 * Writes PostgreSQL's dirty pages out now, between phases: a checkpoint that one phase's writes
 * (a 100,000-row drain) made due would otherwise start inside the next one and stall its commits.
 * Returns why it could not, when the role may not checkpoint (then the run goes on without).
 */
export async function checkpoint(url: string): Promise<string | undefined> {
  try {
    await withConnection(url, (execute) => execute('checkpoint'));
    return undefined;
  } catch (error) {
    return `no CHECKPOINT between phases (${error instanceof Error ? error.message : String(error)}): a checkpoint one phase made due may stall the next`;
  }
}
