import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable } from '@nestjs/common';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import type { Queue } from 'bullmq';
import { OUTBOX_QUEUE, OutboxSubscriptions, currentMessage, type OutboxJobData } from 'nest-outbox';
import { freshDatabase } from './support/database.js';
import {
  Account,
  CAPTURE_FOR_RELAY,
  CAPTURE_ONLY,
  CountDeposits,
  Deposited,
  Pinged,
  prepareFixtureDatabase,
  recordEffect,
  startFixtureApp,
  type FixtureApp,
  type FixtureOutboxOptions,
} from './support/fixture.js';
import { removePrefix, uniquePrefix, REDIS_URL } from './support/redis.js';
import { waitUntil } from './support/wait.js';

/** Writes `accounts` × `deposits` Deposited events in one flush of a capture-only app. */
async function writeDeposits(app: FixtureApp, accounts: number, deposits: number, prefix: string): Promise<void> {
  const em = app.orm.em.fork() as EntityManager;
  for (let a = 0; a < accounts; a++) {
    const account = new Account(`${prefix}-${a}`, `${prefix}-${a}@example.com`);
    for (let d = 0; d < deposits; d++) account.deposit(1);
    em.persist(account);
  }
  await em.flush();
}

async function duplicateEffects(app: FixtureApp): Promise<unknown[]> {
  return app.sql('select message_id, handler, count(*)::int as n from effect group by 1, 2 having count(*) > 1');
}

const calls = { flaky: new Map<string, number>(), sibling: 0 };

@EventsHandler(Deposited)
class FlakyDeposits implements IEventHandler<Deposited> {
  constructor(private readonly em: EntityManager) {}

  async handle(): Promise<void> {
    const id = currentMessage()!.headers.messageId;
    const attempt = (calls.flaky.get(id) ?? 0) + 1;
    calls.flaky.set(id, attempt);
    // Written before the throw: a failed attempt's writes must roll back with it.
    await recordEffect(this.em, 'FlakyDeposits');
    if (attempt <= 2) throw new Error(`flaky failure ${attempt}`);
  }
}

@Injectable()
@EventsHandler(Deposited)
class CountingSibling implements IEventHandler<Deposited> {
  constructor(private readonly em: EntityManager) {}

  async handle(): Promise<void> {
    calls.sibling++;
    await recordEffect(this.em, 'CountingSibling');
  }
}

@EventsHandler(Pinged)
class AlwaysFails implements IEventHandler<Pinged> {
  handle(): void {
    throw new Error('the printer is on fire');
  }
}

/** Loads the account through the injected EntityManager, which resolves to the run's transaction. */
@EventsHandler(Deposited)
class LoadsAccount implements IEventHandler<Deposited> {
  constructor(private readonly em: EntityManager) {}

  async handle(event: Deposited): Promise<void> {
    await this.em.findOneOrFail(Account, event.accountId);
    await recordEffect(this.em, 'LoadsAccount');
  }
}

describe('delivery', () => {
  let databaseUrl: string;
  const queues: string[] = [];
  const apps: FixtureApp[] = [];

  async function start(
    options: FixtureOutboxOptions,
    providers?: Parameters<typeof startFixtureApp>[2],
  ): Promise<FixtureApp> {
    const app = await startFixtureApp(databaseUrl, options, providers);
    apps.push(app);
    return app;
  }

  function redisPrefix(prefix: string): string {
    const name = uniquePrefix(prefix);
    queues.push(name);
    return name;
  }

  beforeAll(async () => {
    databaseUrl = await freshDatabase('delivery');
    await prepareFixtureDatabase(databaseUrl);
  });

  afterEach(async () => {
    await Promise.all(apps.splice(0).map((app) => app.close()));
    const [app] = [await startFixtureApp(databaseUrl, CAPTURE_ONLY, [])];
    await app.sql('truncate outbox_message, inbox_message, account, effect');
    await app.close();
  });

  afterAll(async () => {
    await Promise.all(queues.map((name) => removePrefix(name)));
  });

  it('two relays running at once over 2,000 rows: every message delivered, every effect exactly once', async () => {
    const writer = await start(CAPTURE_FOR_RELAY, []);
    await writeDeposits(writer, 200, 10, 'two-relays');
    const queue = redisPrefix('two-relays');
    const options: FixtureOutboxOptions = {
      redis: REDIS_URL,
      prefix: queue,
      relay: { batchSize: 50 },
      worker: { concurrency: 8 },
    };
    const [first, second] = await Promise.all([start(options), start(options)]);

    await waitUntil('2,000 deposits handled', () => first.monitor.isSettled(), 60_000);
    const [{ handled, messages }] = await first.sql(
      'select count(*)::int as handled, count(distinct message_id)::int as messages from effect',
    );
    expect({ handled, messages }).toEqual({ handled: 2000, messages: 2000 });
    expect(await duplicateEffects(first)).toEqual([]);
    const [{ pending, locked }] = await first.sql(
      'select count(*) filter (where dispatched_at is null)::int as pending, count(*) filter (where locked_until is not null)::int as locked from outbox_message',
    );
    expect({ pending, locked }).toEqual({ pending: 0, locked: 0 });
    const claimed = [first, second].map((app) => app.monitor.processCounters().relay.claimed);
    // SKIP LOCKED: the two relays claimed disjoint rows, so together exactly one claim per row.
    expect(claimed[0] + claimed[1]).toBe(2000);
  });

  it('a relay in another process is woken by the commit through Redis, not by its schedule', async () => {
    const name = redisPrefix('wake');
    const writer = await start(
      {
        redis: REDIS_URL,
        prefix: name,
        relay: { enabled: false, dispatchOnCommit: false },
        worker: { enabled: false },
      },
      [],
    );
    const relay = await start({ redis: REDIS_URL, prefix: name, relay: { intervalMs: 3_600_000 } });
    // The relay's first drain at boot found nothing; only the wake-up can move this row within the hour.
    await relay.runner.relayIdle();
    await writeDeposits(writer, 1, 1, 'wake');
    await waitUntil(
      'handled by the other process',
      async () => (await relay.sql('select count(*)::int as n from effect'))[0].n === 1,
      10_000,
    );
  });

  it('provision() registers the handlers of a service without a worker, so its processes route to them', async () => {
    const prefix = redisPrefix('provision');
    const relayOnly = await start({ redis: REDIS_URL, prefix, worker: { enabled: false } });
    await writeDeposits(relayOnly, 1, 1, 'provision-before');
    // No service registered yet: the row waits rather than being marked unrouted.
    await relayOnly.runner.relayIdle();
    expect(await relayOnly.sql('select count(*)::int as n from outbox_message where dispatched_at is null')).toEqual([
      { n: 1 },
    ]);

    const provisioned = await relayOnly.app.get(OutboxSubscriptions).provision();
    expect(provisioned).toEqual(
      expect.arrayContaining([
        { type: 'test.deposited.v1', handler: 'CountDeposits', ordered: false },
        { type: 'Pinged', handler: 'CountPings', ordered: false },
      ]),
    );
    await writeDeposits(relayOnly, 1, 1, 'provision-after');
    const queue = relayOnly.app.get<Queue<OutboxJobData>>(OUTBOX_QUEUE);
    await waitUntil('both rows in the service queue', async () => (await queue.getJobCounts('waiting')).waiting === 2);
    const [job] = await queue.getJobs(['waiting'], 0, 0);
    expect(job.data.handlers).toEqual(['CountDeposits']);
  });

  it('the same message delivered twice (job removed and re-added) has its effect once', async () => {
    const prefixUsed = redisPrefix('duplicate');
    const app = await start({ redis: REDIS_URL, prefix: prefixUsed });
    await writeDeposits(app, 1, 1, 'dup');
    await waitUntil('first delivery handled', () => app.monitor.isSettled());
    const [{ id }] = await app.sql('select id from outbox_message');

    const queue = app.app.get<Queue<OutboxJobData>>(OUTBOX_QUEUE);
    const job = (await queue.getJob(id))!;
    expect(await job.getState()).toBe('completed');
    await job.remove();
    await queue.add(job.name, job.data, { jobId: id });
    await waitUntil('redelivered job completed', async () => (await queue.getJobState(id)) === 'completed');

    expect(await app.sql('select handler from effect where message_id = ?', [id])).toEqual([
      { handler: 'CountDeposits' },
    ]);
    expect(await app.sql('select handler from inbox_message where message_id = ?', [id])).toEqual([
      { handler: 'CountDeposits' },
    ]);
  });

  it('a handler failing twice then succeeding is retried; its effect happens once and its sibling is not run again', async () => {
    calls.flaky.clear();
    calls.sibling = 0;
    const app = await start(
      {
        redis: REDIS_URL,
        prefix: redisPrefix('flaky'),
        worker: { attempts: 3, backoff: { type: 'fixed', delayMs: 10 } },
      },
      [CountingSibling, FlakyDeposits],
    );
    await writeDeposits(app, 1, 1, 'flaky');
    await waitUntil('flaky message handled', () => app.monitor.isSettled());

    const [{ id }] = await app.sql('select id from outbox_message');
    expect(calls.flaky.get(id)).toBe(3);
    expect(calls.sibling).toBe(1);
    expect(await app.sql('select handler from effect order by handler')).toEqual([
      { handler: 'CountingSibling' },
      { handler: 'FlakyDeposits' },
    ]);
    expect((await app.monitor.snapshot()).queue.failed).toBe(0);
  });

  it('a handler that always fails becomes a dead letter after the configured attempts, naming the handler; others keep flowing', async () => {
    const name = redisPrefix('dead');
    const app = await start(
      { redis: REDIS_URL, prefix: name, worker: { attempts: 3, backoff: { type: 'fixed', delayMs: 10 } } },
      [CountDeposits, AlwaysFails],
    );
    const em = app.orm.em.fork() as EntityManager;
    const account = new Account('poisoned', 'poisoned@example.com');
    account.ping('print me');
    await em.persist(account).flush();
    const [{ id }] = await app.sql('select id from outbox_message');
    const queue = app.app.get<Queue<OutboxJobData>>(OUTBOX_QUEUE);
    await waitUntil('dead letter', async () => (await queue.getJobState(id)) === 'failed');

    const dead = (await queue.getJob(id))!;
    expect(dead.attemptsMade).toBe(3);
    expect(dead.failedReason).toMatch(
      /^Handler AlwaysFails failed on Pinged \(message [0-9a-f-]{36}\): the printer is on fire$/,
    );

    await writeDeposits(app, 3, 2, 'after-poison');
    const deposits = async () =>
      (await app.sql("select count(*)::int as n from effect where handler = 'CountDeposits'"))[0].n;
    await waitUntil('later messages handled', async () => (await deposits()) === 6);
    // A dead letter is a registered handler that has not run: the outbox does not count as settled.
    expect(await app.monitor.isSettled()).toBe(false);
  });

  it.each([false, true])(
    'handler runs leave no entity in the global EntityManager (allowGlobalContext: %s)',
    async (allowGlobalContext) => {
      const name = redisPrefix(`global-context-${allowGlobalContext}`);
      const app = await startFixtureApp(databaseUrl, { redis: REDIS_URL, prefix: name }, [LoadsAccount], [], [], {
        allowGlobalContext,
      });
      apps.push(app);
      await writeDeposits(app, 3, 2, `global-context-${allowGlobalContext}`);
      await waitUntil('6 deposits handled', () => app.monitor.isSettled());
      const [{ runs }] = await app.sql("select count(*)::int as runs from effect where handler = 'LoadsAccount'");
      expect(runs).toBe(6);
      // Merged into it, every entity a handler loaded would stay in memory as long as the process.
      expect(app.orm.em.getUnitOfWork(false).getIdentityMap().keys()).toEqual([]);
    },
  );
});
