import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Queue } from 'bullmq';
import {
  OUTBOX_QUEUE,
  OutboxDeadLetters,
  OutboxRetention,
  type OutboxModuleOptions,
  type RetentionResult,
} from 'nest-outbox';
import { freshDatabase } from './support/database.js';
import { migrateOrders, post, startOrdersApp } from './support/orders-app.js';
import { REDIS_URL, removePrefix, uniquePrefix } from './support/redis.js';
import { waitUntil } from './support/wait.js';

// Small windows so rows become old within the test: dispatched rows at once, inbox marks after
// 1 s (valid: with one attempt the retry window is 0).
const SHORT_RETENTION: OutboxModuleOptions['retention'] = {
  dispatchedAfterSeconds: 0,
  inboxAfterSeconds: 1,
  batchSize: 7,
};

async function startService(name: string, retention: OutboxModuleOptions['retention']) {
  const prefix = uniquePrefix(name);
  const databaseUrl = await freshDatabase(name);
  await migrateOrders(databaseUrl);
  const service = await startOrdersApp(databaseUrl, {
    redis: REDIS_URL,
    prefix,
    relay: { intervalMs: 50 },
    worker: { attempts: 1 },
    retention,
  });
  const sql = (query: string, params: unknown[] = []) => service.orm.em.getConnection().execute(query, params);
  const counts = async () => {
    const [row] = await sql(
      'select (select count(*) from outbox_message)::int as outbox, (select count(*) from inbox_message)::int as inbox',
    );
    return row as { outbox: number; inbox: number };
  };
  /** Places `n` orders over HTTP; each writes one OrderPlaced, handled by two handlers (two inbox marks). */
  const placeOrders = async (n: number, tag: string) => {
    await Promise.all(
      Array.from({ length: n }, (_, i) =>
        post(`${service.url}/orders`, { customerId: `${tag}-${i}`, totalCents: 100 + i }),
      ),
    );
    // Effects and inbox marks commit together, so once both handlers' effects are there, so are the marks.
    // (Not monitor.isSettled(): the test's own never-due rows keep the outbox from looking settled.)
    await waitUntil(`orders ${tag} handled`, async () => {
      const [row] = await sql(
        `select (select count(*) from order_summary where customer_id like ?)::int + (select count(*) from notification_log where customer_id like ?)::int as done`,
        [`${tag}-%`, `${tag}-%`],
      );
      return row.done === 2 * n;
    });
  };
  return { service, prefix, sql, counts, placeOrders };
}

describe('retention: cleanup on demand', () => {
  let env: Awaited<ReturnType<typeof startService>>;
  let retention: OutboxRetention;

  beforeAll(async () => {
    // The schedule is off: only runOnce deletes, so every deletion is counted by the test.
    env = await startService('retention_on_demand', { ...SHORT_RETENTION, enabled: false });
    retention = env.service.app.get(OutboxRetention);
  });

  afterAll(async () => {
    await env?.service.close();
    if (env) await removePrefix(env.prefix);
  });

  it('keeps outbox and inbox bounded by one wave under a steady stream; every event handled once; pending rows kept', async () => {
    // Never dispatched: one not due for a day, one claimed by a relay whose lease is still running.
    const pending = [randomUUID(), randomUUID()];
    await env.sql(
      `insert into outbox_message (id, type, payload, headers, occurred_at, available_at, locked_until) values
        (?, 'test.pending', '{}', '{}', now() - interval '2 days', now() + interval '1 day', null),
        (?, 'test.pending', '{}', '{}', now() - interval '2 days', null, now() + interval '1 day')`,
      pending,
    );
    const WAVES = 5;
    const PER_WAVE = 12;
    const deleted: RetentionResult = { outboxDeleted: 0, inboxDeleted: 0 };
    let peak = { outbox: 0, inbox: 0 };

    for (let wave = 0; wave < WAVES; wave++) {
      await env.placeOrders(PER_WAVE, `w${wave}`);
      const before = await env.counts();
      peak = { outbox: Math.max(peak.outbox, before.outbox), inbox: Math.max(peak.inbox, before.inbox) };
      await waitUntil(`wave ${wave} cleaned up`, async () => {
        const result = await retention.runOnce();
        deleted.outboxDeleted += result.outboxDeleted;
        deleted.inboxDeleted += result.inboxDeleted;
        const after = await env.counts();
        return after.outbox === pending.length && after.inbox === 0;
      });
    }

    const total = WAVES * PER_WAVE;
    // Never more than one wave (plus the pending rows) in the tables, though five were written.
    expect(peak).toEqual({ outbox: PER_WAVE + pending.length, inbox: 2 * PER_WAVE });
    expect(deleted).toEqual({ outboxDeleted: total, inboxDeleted: 2 * total });
    const kept = await env.sql('select id from outbox_message order by id');
    expect(kept.map((row) => row.id).sort()).toEqual([...pending].sort());
    // Each event's effects happened exactly once.
    const [effects] = await env.sql(`select
      (select count(*) from notification_log where kind = 'order-confirmation')::int as notifications,
      (select count(distinct message_id) from notification_log)::int as messages,
      (select count(*) from order_summary)::int as summaries`);
    expect(effects).toEqual({ notifications: total, messages: total, summaries: total });
  });

  it('keeps the inbox marks of a dead letter past inboxAfterSeconds, until it is discarded', async () => {
    const queue = env.service.app.get<Queue>(OUTBOX_QUEUE);
    const deadLetters = env.service.app.get(OutboxDeadLetters);
    const dead = randomUUID();
    const done = randomUUID();
    // A message that failed for good long after a sibling handler succeeded on it, and a finished one.
    await queue.add('foreign.job', { nope: true }, { jobId: dead, removeOnFail: false });
    await waitUntil('the dead letter', async () => (await queue.getJob(dead))?.isFailed() ?? false);
    await env.sql(
      `insert into inbox_message (message_id, handler, processed_at) values
        (?, 'SendOrderConfirmation', now() - interval '1 day'), (?, 'SendOrderConfirmation', now() - interval '1 day')`,
      [dead, done],
    );
    const marks = async () =>
      (await env.sql('select message_id from inbox_message where message_id in (?, ?)', [dead, done])).map(
        (row) => row.message_id,
      );

    expect(await retention.runOnce()).toEqual({ outboxDeleted: 0, inboxDeleted: 1 });
    expect(await marks()).toEqual([dead]);

    await deadLetters.discard(dead);
    expect(await retention.runOnce()).toEqual({ outboxDeleted: 0, inboxDeleted: 1 });
    expect(await marks()).toEqual([]);
  });

  it('keeps the inbox marks of a message still waiting to run (here delayed), however old, until its job is gone', async () => {
    const queue = env.service.app.get<Queue>(OUTBOX_QUEUE);
    const later = randomUUID();
    // A message retried with a long backoff after one of its handlers succeeded a day ago.
    await queue.add('foreign.job', { nope: true }, { jobId: later, delay: 3_600_000 });
    await env.sql(
      `insert into inbox_message (message_id, handler, processed_at) values (?, 'SendOrderConfirmation', now() - interval '1 day')`,
      [later],
    );
    const marks = async () =>
      (await env.sql('select message_id from inbox_message where message_id = ?', [later])).map(
        (row) => row.message_id,
      );

    expect(await queue.getJobState(later)).toBe('delayed');
    expect(await retention.runOnce()).toEqual({ outboxDeleted: 0, inboxDeleted: 0 });
    expect(await marks()).toEqual([later]);

    await (await queue.getJob(later))!.remove();
    expect(await retention.runOnce()).toEqual({ outboxDeleted: 0, inboxDeleted: 1 });
    expect(await marks()).toEqual([]);
  });
});

describe('retention: on its schedule', () => {
  let env: Awaited<ReturnType<typeof startService>>;

  beforeAll(async () => {
    env = await startService('retention_scheduled', { ...SHORT_RETENTION, intervalMs: 100 });
  });

  afterAll(async () => {
    await env?.service.close();
    if (env) await removePrefix(env.prefix);
  });

  it('removes old dispatched rows and inbox marks without being asked', async () => {
    await env.placeOrders(10, 'scheduled');
    await waitUntil('the schedule cleaned up', async () => {
      const { outbox, inbox } = await env.counts();
      return outbox === 0 && inbox === 0;
    });
    const [{ summaries }] = await env.sql('select count(*)::int as summaries from order_summary');
    expect(summaries).toBe(10);
  });
});
