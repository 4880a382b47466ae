import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { MikroORM } from '@mikro-orm/postgresql';
import { outboxSchemaSql } from 'nest-outbox';
import pg, { type Pool } from 'pg';
import { RelayStore, type DispatchedRow, type OrderedRoutes } from '../libs/outbox/src/relay/relay.store.js';
import { PrivatePostgres } from './support/private-postgres.js';
import { waitUntil } from './support/wait.js';

const CLAIMS = 30;
const TABLES = { outbox: 'outbox_message', inbox: 'inbox_message' };

let url: string;
/** One connection to the outbox's database: not one of the backends `walSyncs` waits for. */
let db: Pool;

/** WAL flushes (fsync calls) the server made so far, once every other backend of the database has exited. */
async function walSyncs(): Promise<number> {
  // A backend reports its WAL counters when it exits; the ORM's pool has just closed.
  const database = new URL(url).pathname.slice(1);
  await waitUntil("the relay store's connections to have exited", async () => {
    const [{ n }] = (
      await db.query<{ n: string }>(
        'select count(*) as n from pg_stat_activity where datname = $1 and pid <> pg_backend_pid()',
        [database],
      )
    ).rows;
    return Number(n) === 0;
  });
  const [{ syncs }] = (await db.query<{ syncs: string }>('select wal_sync as syncs from pg_stat_wal')).rows;
  return Number(syncs);
}

/** Claims the table's rows one at a time, each claim marking the row before it, as the relay does at a low rate. */
async function claimOneByOne(ordered?: OrderedRoutes): Promise<{ walSyncs: number; claimed: number }> {
  const orm = await MikroORM.init({ clientUrl: url, entities: [], discovery: { warnWhenNoEntities: false } });
  const store = new RelayStore(orm, TABLES, { relayId: 'relay-1', deleteOnDispatch: false, maxAttempts: 5 });
  const before = await walSyncs();
  let previous: DispatchedRow[] = [];
  let claimed = 0;
  try {
    for (let i = 0; i < CLAIMS; i++) {
      const rows = await store.claim(1, 30_000, previous, ordered);
      claimed += rows.length;
      previous = rows.map((row) => ({ id: row.id, type: row.type, routedTo: ['bench'] }));
    }
    await store.markDispatched(previous);
  } finally {
    await orm.close(true);
  }
  return { walSyncs: (await walSyncs()) - before, claimed };
}

async function insertRows(type: string, keyed: boolean): Promise<void> {
  await db.query(
    `insert into outbox_message (id, type, payload, headers, key, occurred_at)
     select gen_random_uuid(), $1, '{}', '{}', case when $2 then 'Order:' || n end, now()
     from generate_series(1, $3::int) n`,
    [type, keyed, CLAIMS],
  );
}

describe("the relay's bookkeeping in PostgreSQL", () => {
  let server: PrivatePostgres | undefined;

  beforeAll(async () => {
    // A server of its own: WAL flushes are counted server-wide, and suites running beside this one
    // would add theirs. With fsync on (the private servers run without), so that flushes happen and count.
    server = await PrivatePostgres.start({ maxConnections: 20, settings: ['-c fsync=on'] });
    url = server.url();
    db = new pg.Pool({ connectionString: url, max: 1 });
    for (const statement of outboxSchemaSql()) await db.query(statement);
  });

  afterAll(async () => {
    await db?.end();
    await server?.destroy();
  });

  it(
    'claims and marks commit without waiting for the WAL flush (a crash only sends their rows again); ' +
      'ordered claims wait, as the key places they hand out must survive one',
    async () => {
      await insertRows('orders.placed.v1', false);
      const unordered = await claimOneByOne();
      await insertRows('orders.shipped.v1', true);
      const ordered = await claimOneByOne({ 'orders.shipped.v1': ['bench/ShippedHandler'] });

      expect(unordered.claimed).toBe(CLAIMS);
      expect(ordered.claimed).toBe(CLAIMS);
      const [{ pending }] = (
        await db.query<{ pending: number }>(
          'select count(*)::int as pending from outbox_message where dispatched_at is null',
        )
      ).rows;
      expect(pending).toBe(0);
      // Every ordered claim flushes; the unordered ones leave it to the WAL writer, a few times at most.
      expect(ordered.walSyncs).toBeGreaterThanOrEqual(CLAIMS);
      expect(unordered.walSyncs).toBeLessThan(CLAIMS / 2);
    },
  );
});
