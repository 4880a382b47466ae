import { describe, expect, it } from '@jest/globals';
import { outboxSchemaSql } from 'nest-outbox';
import pg from 'pg';
import { freshDatabase } from './support/database.js';

describe('the outbox table', () => {
  it("leaves room on its pages for claims: a backlog's rows are claimed in place (HOT), adding no index entries", async () => {
    const pool = new pg.Pool({ connectionString: await freshDatabase('outbox_table'), max: 1 });
    const client = await pool.connect();
    try {
      for (const statement of outboxSchemaSql()) await client.query(statement);
      // A backlog of rows the size of a small event with its headers (about 600 bytes each).
      await client.query(`insert into outbox_message (id, type, payload, headers, aggregate_type, aggregate_id, key, occurred_at)
        select gen_random_uuid(), 'orders.order-placed.v1', json_build_object('note', repeat('n', 250), 'n', n),
          json_build_object('messageId', gen_random_uuid(), 'correlationId', gen_random_uuid(), 'occurredAt', now()),
          'Order', n::text, 'Order:' || n, now()
        from generate_series(1, 200) n`);
      const [{ pages }] = (
        await client.query(`select count(distinct (ctid::text::point)[0]) as pages from outbox_message`)
      ).rows;
      // The columns the relay's claim sets (relay.store.ts), none of them indexed.
      await client.query('begin');
      await client.query(`update outbox_message set locked_until = now() + interval '30 seconds',
        attempts = attempts + 1, claimed_by = 'relay-1'`);
      const [{ hot }] = (
        await client.query(`select pg_stat_get_xact_tuples_hot_updated('outbox_message'::regclass) as hot`)
      ).rows;
      await client.query('rollback');
      // Many pages: no single page's slack decides the outcome.
      expect(Number(pages)).toBeGreaterThan(10);
      // Nine in ten at least: a page's last row may find no room left for its new version (at
      // PostgreSQL's default fillfactor, none of them does).
      expect(Number(hot)).toBeGreaterThanOrEqual(180);
    } finally {
      client.release();
      await pool.end();
    }
  });
});
