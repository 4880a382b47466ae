import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { EntityManager } from '@mikro-orm/postgresql';
import { freshDatabase } from './support/database.js';
import { Account, prepareFixtureDatabase, startFixtureApp } from './support/fixture.js';
import { PrivateRedis } from './support/redis.js';

describe('shutdown while Redis is down', () => {
  let redis: PrivateRedis;
  let url: string;

  beforeAll(async () => {
    redis = await PrivateRedis.start();
    url = await freshDatabase('shutdown');
    await prepareFixtureDatabase(url);
  });

  afterAll(async () => {
    await redis?.stop();
  });

  it('still closes within the shutdown timeout, and the rows wait pending and unlocked', async () => {
    const app = await startFixtureApp(url, {
      redis: redis.url,
      prefix: 'shutdown',
      shutdownTimeoutMs: 1000,
      relay: { leaseMs: 60_000 },
    });
    await redis.stop();
    const em = app.orm.em.fork() as EntityManager;
    const account = new Account('s1', 's1@example.com');
    account.deposit(1);
    await em.persist(account).flush();

    const started = Date.now();
    await app.close();
    expect(Date.now() - started).toBeLessThan(1000 + 2000 + 1500);

    const after = await startFixtureApp(
      url,
      { relay: { enabled: false }, worker: { enabled: false }, redis: redis.url, prefix: 'shutdown' },
      [],
    );
    const [row] = await after.sql(
      'select count(*) filter (where dispatched_at is null)::int as pending, count(*) filter (where locked_until > now())::int as locked from outbox_message',
    );
    expect(row).toEqual({ pending: 1, locked: 0 });
    await after.close();
  });
});
