import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { EntityManager } from '@mikro-orm/postgresql';
import { Logger } from '@nestjs/common';
import { freshDatabase } from './support/database.js';
import {
  Account,
  CAPTURE_ONLY,
  outboxRows,
  prepareFixtureDatabase,
  startFixtureApp,
  type FixtureApp,
} from './support/fixture.js';
import { PrivateRedis } from './support/redis.js';
import { waitUntil } from './support/wait.js';

describe('Redis unreachable while rows are written', () => {
  let redis: PrivateRedis;
  let app: FixtureApp;

  const counts = async () => {
    const [row] = await app.sql(`select count(*)::int as total,
      count(*) filter (where dispatched_at is null)::int as pending,
      count(*) filter (where last_error is not null)::int as errored,
      coalesce(sum(attempts), 0)::int as attempts,
      count(*) filter (where locked_until > now())::int as locked from outbox_message`);
    return row as { total: number; pending: number; errored: number; attempts: number; locked: number };
  };

  beforeAll(async () => {
    redis = await PrivateRedis.start();
    const url = await freshDatabase('redis_outage');
    await prepareFixtureDatabase(url);
    app = await startFixtureApp(url, {
      redis: redis.url,
      prefix: 'outage',
      relay: { maxBackoffMs: 200, leaseMs: 2000 },
    });
  });

  afterAll(async () => {
    await app?.close();
    await redis?.stop();
  });

  it('rows stay pending, the outage is logged once, and everything is delivered once Redis is back', async () => {
    const errors = jest.spyOn(Logger.prototype, 'error');
    await redis.stop();

    const em = app.orm.em.fork() as EntityManager;
    for (let i = 0; i < 50; i++) {
      const account = new Account(`outage-${i}`, `outage-${i}@example.com`);
      account.deposit(i + 1);
      em.persist(account);
    }
    await em.flush();

    const relay = () => app.monitor.processCounters().relay;
    const failedBefore = relay().failedDrains;
    await waitUntil('the relay failed three times', () => relay().failedDrains >= failedBefore + 3, 60_000);
    const during = await counts();
    expect(during.total).toBe(50);
    expect(during.pending).toBe(50);
    // The send on commit failed and handed the rows back; without Redis the relay cannot read the
    // subscriptions, so it claims nothing: no lease is held and no row spends an attempt while it waits.
    expect(during.locked).toBe(0);
    expect(during.attempts).toBe(0);
    const outageLogs = errors.mock.calls.filter(([message]) => String(message).startsWith('event=outbox.relay.outage'));
    expect(outageLogs).toHaveLength(1);

    await redis.start();
    await waitUntil(
      'all delivered and handled',
      async () => {
        try {
          return await app.monitor.isSettled();
        } catch {
          return false;
        }
      },
      60_000,
    );
    expect(await counts()).toMatchObject({ total: 50, pending: 0, errored: 0, locked: 0 });
    expect(
      await app.sql('select count(*)::int as effects, count(distinct message_id)::int as messages from effect'),
    ).toEqual([{ effects: 50, messages: 50 }]);
    errors.mockRestore();
  }, 180_000);
});

describe('an API process started while Redis is down', () => {
  it('boots and commits; its rows, not sent, go to the relays saying why and are delivered once Redis is back', async () => {
    const redis = await PrivateRedis.start();
    await redis.stop();
    const url = await freshDatabase('redis_down_at_boot');
    await prepareFixtureDatabase(url);
    const apps: FixtureApp[] = [];
    try {
      const api = await startFixtureApp(url, { ...CAPTURE_ONLY, redis: redis.url, prefix: 'down-at-boot' }, []);
      apps.push(api);
      const account = new Account('boot-1', 'boot-1@example.com');
      account.deposit(1);
      await (api.orm.em.fork() as EntityManager).persist(account).flush();

      const row = async () => (await outboxRows(api))[0];
      await waitUntil('the row handed back to the relays', async () => (await row()).last_error !== null);
      expect(await row()).toMatchObject({ locked: false, attempts: 0, dispatched: false });
      expect((await row()).last_error).toMatch(/^enqueue after commit failed/);

      await redis.start();
      const consumer = await startFixtureApp(url, { redis: redis.url, prefix: 'down-at-boot' });
      apps.push(consumer);
      await waitUntil(
        'handled once Redis is back and a relay runs',
        async () => (await consumer.sql('select count(*)::int as n from effect'))[0].n === 1,
        30_000,
      );
    } finally {
      await Promise.all(apps.map((app) => app.close()));
      await redis.stop();
    }
  }, 120_000);
});
