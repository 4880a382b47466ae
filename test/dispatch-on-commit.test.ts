import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { EntityManager } from '@mikro-orm/postgresql';
import { Logger } from '@nestjs/common';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import type { Queue } from 'bullmq';
import { OUTBOX_QUEUE, OutboxOrdered, OutboxService, currentMessage } from 'nest-outbox';
import { freshDatabase } from './support/database.js';
import {
  Account,
  CAPTURE_ONLY,
  CountPings,
  Deposited,
  outboxRows,
  Pinged,
  prepareFixtureDatabase,
  recordEffect,
  startFixtureApp,
  type FixtureApp,
  type FixtureOutboxOptions,
} from './support/fixture.js';
import { REDIS_URL, freePort, removePrefix, uniquePrefix } from './support/redis.js';
import { waitUntil } from './support/wait.js';

/** An ordered handler: its keyed messages need a place in their key's order, which only a relay's claim gives. */
@EventsHandler(Deposited)
@OutboxOrdered()
class OrderedDeposits implements IEventHandler<Deposited> {
  constructor(private readonly em: EntityManager) {}

  async handle(event: Deposited): Promise<void> {
    await recordEffect(this.em, `OrderedDeposits:${event.sequence}`);
  }
}

/** Raises a Pinged for each deposit, in the handler's transaction. */
@EventsHandler(Deposited)
class PingOnDeposit implements IEventHandler<Deposited> {
  constructor(private readonly outbox: OutboxService) {}

  handle(event: Deposited): void {
    this.outbox.publish(new Pinged(event.accountId, `deposit ${event.sequence}`));
  }
}

/** Like PingOnDeposit, but the run of deposit 2 fails once after publishing: its transaction rolls back. */
@EventsHandler(Deposited)
class PingOnDepositFailingOnce implements IEventHandler<Deposited> {
  constructor(private readonly outbox: OutboxService) {}

  handle(event: Deposited): void {
    this.outbox.publish(new Pinged(event.accountId, `deposit ${event.sequence}`));
    if (event.sequence === 2 && currentMessage()!.attempt === 1) throw new Error('fails once, after publishing');
  }
}

/** A process that writes and sends its own rows on commit: no relay, no handlers. */
function onCommitWriter(prefix: string, redis = REDIS_URL): FixtureOutboxOptions {
  return { redis, prefix, relay: { enabled: false, dispatchOnCommit: true }, worker: { enabled: false } };
}

describe('relay.dispatchOnCommit: the committing process enqueues its rows itself', () => {
  let databaseUrl: string;
  const prefixes: string[] = [];
  const apps: FixtureApp[] = [];

  async function start(options: FixtureOutboxOptions, providers?: Parameters<typeof startFixtureApp>[2]) {
    const app = await startFixtureApp(databaseUrl, options, providers);
    apps.push(app);
    return app;
  }

  function prefix(name: string): string {
    const unique = uniquePrefix(name);
    prefixes.push(unique);
    return unique;
  }

  beforeAll(async () => {
    databaseUrl = await freshDatabase('dispatch_on_commit');
    await prepareFixtureDatabase(databaseUrl);
  });

  afterEach(async () => {
    jest.restoreAllMocks();
    await Promise.all(apps.splice(0).map((app) => app.close()));
    const cleaner = await startFixtureApp(databaseUrl, CAPTURE_ONLY, []);
    await cleaner.sql(
      'truncate outbox_message, outbox_message_route, outbox_message_route_seq, inbox_message, account, effect',
    );
    await cleaner.close();
  });

  afterAll(async () => {
    await Promise.all(prefixes.map((name) => removePrefix(name)));
  });

  it('with no relay running anywhere, every row of every kind of flush reaches the handlers and is marked', async () => {
    const name = prefix('on-commit');
    const consumer = await start({ redis: REDIS_URL, prefix: name, relay: { enabled: false } });
    const writer = await start(onCommitWriter(name), []);
    const em = writer.orm.em.fork() as EntityManager;
    // 120 events in one flush: written with bind parameters (more than fit printed into the text).
    const busy = new Account('busy', 'busy@example.com');
    for (let i = 0; i < 120; i++) busy.deposit(1);
    em.persist(busy);
    await em.flush();
    // A few events beside a state change: printed into the INSERT that travels with COMMIT.
    busy.deposit(5);
    await em.flush();
    // Events and nothing else: the rows are the flush's only change sets.
    busy.ping('hello');
    await em.flush();

    await waitUntil('122 messages handled', async () => (await consumer.sql('select * from effect')).length === 122);
    await waitUntil('every row marked', async () => (await outboxRows(writer)).every((row) => row.dispatched));
    const rows = await outboxRows(writer);
    expect(rows).toHaveLength(122);
    const writerId = rows[0].claimed_by;
    expect(writerId).toMatch(new RegExp(`:${process.pid}:`));
    for (const row of rows) {
      expect(row).toMatchObject({ locked: false, claimed_by: writerId, attempts: 1, last_error: null });
      expect(row.routed_to).toEqual(['fixture']);
    }
    expect(writer.monitor.processCounters().relay).toMatchObject({ claimed: 122, dispatched: 122, failedBatches: 0 });
    const [{ duplicates }] = await consumer.sql(
      'select count(*)::int as duplicates from (select message_id from effect group by 1 having count(*) > 1) d',
    );
    expect(duplicates).toBe(0);

    // Shutting down right after a commit: the shutdown waits for its enqueue and marks it.
    busy.deposit(1);
    await em.flush();
    await writer.close();
    apps.splice(apps.indexOf(writer), 1);
    const last = (await outboxRows(consumer)).at(-1)!;
    expect(last).toMatchObject({ dispatched: true, locked: false, claimed_by: writerId });
  });

  it("in the application's own transaction, rows are sent on commit; one PostgreSQL rolled back at COMMIT sends nothing", async () => {
    const name = prefix('on-commit-rollback');
    const consumer = await start({ redis: REDIS_URL, prefix: name, relay: { enabled: false } });
    const writer = await start(onCommitWriter(name), []);
    const em = writer.orm.em.fork() as EntityManager;
    // Two flushes, and a savepoint, in one transaction of the application's: sent once it commits.
    await em.transactional(async (tx) => {
      const first = new Account('first', 'first@example.com');
      first.deposit(1);
      await tx.persist(first).flush();
      await tx.transactional(async (inner) => {
        first.deposit(2);
        await inner.flush();
      });
      first.deposit(3);
    });
    await waitUntil('three messages handled', async () => (await consumer.sql('select * from effect')).length === 3);
    await waitUntil('every row marked', async () => (await outboxRows(writer)).every((row) => row.dispatched));
    const writerId = (await outboxRows(writer))[0].claimed_by;
    expect(writerId).toMatch(new RegExp(`:${process.pid}:`));
    for (const row of await outboxRows(writer)) expect(row).toMatchObject({ claimed_by: writerId, attempts: 1 });

    const warnings = jest.spyOn(Logger.prototype, 'warn');
    await em.transactional(async (tx) => {
      const phantom = new Account('phantom', 'phantom@example.com');
      phantom.deposit(1);
      tx.persist(phantom);
      await tx.flush();
      // The transaction is aborted; MikroORM's commit then gets a silent ROLLBACK and resolves.
      await tx.execute('select 1 / 0').catch(() => undefined);
    });
    expect(await writer.sql("select * from account where id = 'phantom'")).toEqual([]);
    // A message committed after it, sent on commit: once it is handled, nothing else was sent.
    const real = new Account('real', 'real@example.com');
    real.deposit(1);
    await em.persist(real).flush();
    await waitUntil('the real message handled', async () => (await consumer.sql('select * from effect')).length >= 4);
    const [{ id }] = await writer.sql("select id from outbox_message where aggregate_id = 'real'");
    // Batches go out one at a time, in commit order: a job for the phantom would be there already.
    const counts = await consumer.app.get<Queue>(OUTBOX_QUEUE).getJobCounts();
    expect(Object.values(counts).reduce((sum, n) => sum + n, 0)).toBe(4);
    expect((await consumer.sql('select message_id from effect order by id')).at(-1)!.message_id).toEqual(id);
    const said = warnings.mock.calls.map(([message]) => String(message));
    warnings.mockRestore();
    expect(said.filter((message) => /answered COMMIT with ROLLBACK/.test(message))).toHaveLength(1);
  });

  it("a handler's transaction sends what its handler raised on commit, with no relay running", async () => {
    const name = prefix('on-commit-handler');
    const consumer = await start(
      { redis: REDIS_URL, prefix: name, relay: { enabled: false, dispatchOnCommit: true } },
      [PingOnDeposit, CountPings],
    );
    const writer = await start(onCommitWriter(name), []);
    const em = writer.orm.em.fork() as EntityManager;
    const account = new Account('chain', 'chain@example.com');
    account.deposit(1);
    account.deposit(2);
    await em.persist(account).flush();
    await waitUntil('both pings handled', async () => (await consumer.sql('select * from effect')).length === 2);
    await waitUntil('every row marked', async () => (await outboxRows(writer)).every((row) => row.dispatched));
    const rows = await outboxRows(writer);
    expect(rows).toHaveLength(4);
    const [writerId, consumerId] = [rows[0].claimed_by, rows[2].claimed_by];
    expect(consumerId).not.toEqual(writerId);
    expect(rows.map((row) => row.claimed_by)).toEqual([writerId, writerId, consumerId, consumerId]);
    for (const row of rows) expect(row.attempts).toBe(1);
  });

  it('handler runs sharing a transaction send what they raised only once it commits; a run rolled back sends nothing', async () => {
    const name = prefix('on-commit-shared');
    const consumer = await start(
      {
        redis: REDIS_URL,
        prefix: name,
        relay: { enabled: false, dispatchOnCommit: true },
        worker: { handlersPerTransaction: 16, attempts: 3, backoff: { delayMs: 50 } },
      },
      [PingOnDepositFailingOnce, CountPings],
    );
    const writer = await start(onCommitWriter(name), []);
    const em = writer.orm.em.fork() as EntityManager;
    const account = new Account('shared', 'shared@example.com');
    for (let i = 0; i < 4; i++) account.deposit(1);
    await em.persist(account).flush();
    await waitUntil('four pings handled', async () => (await consumer.sql('select * from effect')).length >= 4);
    await waitUntil('every row marked', async () => (await outboxRows(writer)).every((row) => row.dispatched));
    const pings = await writer.sql("select claimed_by, attempts from outbox_message where type = 'Pinged'");
    expect(pings).toHaveLength(4);
    for (const ping of pings) expect(ping).toMatchObject({ claimed_by: expect.stringMatching(/./), attempts: 1 });
    // The failed run's ping was rolled back with its transaction: no job was added for it.
    const counts = await consumer.app.get<Queue>(OUTBOX_QUEUE).getJobCounts();
    expect(Object.values(counts).reduce((sum, n) => sum + n, 0)).toBe(8);
    expect(await consumer.sql('select count(*)::int as n from effect')).toEqual([{ n: 4 }]);
  });

  it('rows committed more than half their lease after they were written are left to a relay', async () => {
    const name = prefix('on-commit-late');
    const consumer = await start({ redis: REDIS_URL, prefix: name, relay: { enabled: false } });
    const writer = await start(
      { ...onCommitWriter(name), relay: { enabled: false, dispatchOnCommit: true, leaseMs: 1000 } },
      [],
    );
    const em = writer.orm.em.fork() as EntityManager;
    await em.transactional(async (tx) => {
      const slow = new Account('slow', 'slow@example.com');
      slow.deposit(1);
      await tx.persist(slow).flush();
      // The transaction stays open past half the lease its rows were written with.
      await new Promise((resolve) => setTimeout(resolve, 600));
    });
    await waitUntil('the row handed back', async () => (await outboxRows(writer))[0].last_error !== null);
    const [row] = await outboxRows(writer);
    expect(row).toMatchObject({ dispatched: false, locked: false, attempts: 0 });
    expect(row.last_error).toMatch(/past half its lease/);

    await start({ redis: REDIS_URL, prefix: name, worker: { enabled: false } }, []);
    await waitUntil('handled once a relay runs', async () => (await consumer.sql('select * from effect')).length === 1);
  });

  it('a delayed message, and keyed messages an ordered handler subscribes to, are left to a relay, which sends them', async () => {
    const name = prefix('on-commit-ordered');
    // Started before the ordered handler registered: it does not know yet that Deposited is ordered.
    const writer = await start(onCommitWriter(name), []);
    const consumer = await start({ redis: REDIS_URL, prefix: name, relay: { enabled: false } }, [OrderedDeposits]);
    const em = writer.orm.em.fork() as EntityManager;
    const account = new Account('ordered', 'ordered@example.com');
    account.deposit(1);
    em.persist(account);
    await em.flush();
    // Written leased, then handed back once the table read after the commit showed the ordered route.
    await waitUntil('the first row handed back', async () => (await outboxRows(writer))[0].last_error !== null);
    expect((await outboxRows(writer))[0]).toMatchObject({ dispatched: false, locked: false, attempts: 0 });
    expect((await outboxRows(writer))[0].last_error).toMatch(/key order/);

    // Now it knows: the next keyed row, and a delayed one, are written for a relay to claim.
    account.deposit(1);
    await em.transactional(() => {
      writer.app.get(OutboxService).publish(new Deposited('later', 1, 9), { delay: 200 });
    });
    await em.flush();
    const [, second, delayed] = await outboxRows(writer);
    expect(second).toMatchObject({ dispatched: false, locked: false, claimed_by: null, attempts: 0 });
    expect(delayed).toMatchObject({ dispatched: false, locked: false, claimed_by: null, attempts: 0 });

    await start({ redis: REDIS_URL, prefix: name, worker: { enabled: false } }, []);
    await waitUntil('three messages handled', async () => (await consumer.sql('select * from effect')).length === 3);
    const handled = (await consumer.sql('select handler from effect order by id')).map((row) => row.handler);
    expect(handled.filter((handler) => handler !== 'OrderedDeposits:9')).toEqual([
      'OrderedDeposits:1',
      'OrderedDeposits:2',
    ]);
    // The two keyed messages got their places from the relay's claim; the delayed one has no key.
    expect(await consumer.sql('select seq::int from outbox_message_route order by seq')).toEqual([
      { seq: 1 },
      { seq: 2 },
    ]);
  });

  it('a failed enqueue hands the rows back to the relays, and the next commits skip the attempt for a while', async () => {
    const name = prefix('on-commit-down');
    const deadRedis = `redis://127.0.0.1:${await freePort()}`;
    const writer = await start(onCommitWriter(name, deadRedis), []);
    const em = writer.orm.em.fork() as EntityManager;
    const account = new Account('down', 'down@example.com');
    account.deposit(1);
    em.persist(account);
    await em.flush();
    await waitUntil('the row handed back', async () => (await outboxRows(writer))[0].last_error !== null);
    const [first] = await outboxRows(writer);
    expect(first).toMatchObject({ dispatched: false, locked: false, attempts: 0 });
    expect(first.last_error).toMatch(/enqueue after commit failed/);
    expect(writer.monitor.processCounters().relay.failedBatches).toBe(1);
    account.deposit(1);
    await em.flush();
    expect((await outboxRows(writer))[1]).toMatchObject({ locked: false, claimed_by: null, attempts: 0 });

    const relay = await start({ redis: REDIS_URL, prefix: name });
    await waitUntil('both handled by the relay', async () => (await relay.sql('select * from effect')).length === 2);
  });
});
