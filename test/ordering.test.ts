import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { EntityManager } from '@mikro-orm/postgresql';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { Job, Queue, Worker } from 'bullmq';
import { Redis } from 'ioredis';
import { OUTBOX_QUEUE, OutboxOrdered, OutboxOrdering, currentMessage } from 'nest-outbox';
import { moveToFront } from '../libs/outbox/src/routing/move-to-front.js';
import { freshDatabase } from './support/database.js';
import { Account, Deposited, prepareFixtureDatabase, startFixtureApp, type FixtureApp } from './support/fixture.js';
import { REDIS_URL, removePrefix, uniquePrefix } from './support/redis.js';
import { waitUntil } from './support/wait.js';

/** Keys whose next message fails, once, so a retry has to keep its key waiting. */
const failOnce = new Set<string>();
/** Keys whose message fails on every attempt until the time given. */
const failUntil = new Map<string, number>();

/** Records each deposit's sequence in the order handled; a random pause lets later messages overtake if allowed. */
@EventsHandler(Deposited)
@OutboxOrdered()
class LedgerProjector implements IEventHandler<Deposited> {
  constructor(private readonly em: EntityManager) {}

  async handle(event: Deposited): Promise<void> {
    await new Promise((resolve) => setTimeout(resolve, Math.random() * 5));
    const key = `${event.accountId}:${event.sequence}`;
    if (failOnce.delete(key) || Date.now() < (failUntil.get(key) ?? 0))
      throw new Error(`ledger unavailable for ${key}`);
    await this.em.execute('insert into ledger (account_id, sequence, message_id) values (?, ?, ?)', [
      event.accountId,
      event.sequence,
      currentMessage()!.headers.messageId,
    ]);
  }
}

describe('order per key: an ordered handler handles one key in commit order', () => {
  const prefix = uniquePrefix('ordering');
  let app: FixtureApp;

  /** Per account, the sequences in the order the handler handled them. */
  async function handledOrder(): Promise<Map<string, number[]>> {
    const rows = await app.sql('select account_id, sequence from ledger order by id');
    const order = new Map<string, number[]>();
    for (const row of rows) order.set(row.account_id, [...(order.get(row.account_id) ?? []), row.sequence]);
    return order;
  }

  beforeAll(async () => {
    const url = await freshDatabase('ordering');
    await prepareFixtureDatabase(url);
    app = await startFixtureApp(
      url,
      {
        redis: REDIS_URL,
        prefix,
        service: 'ledger',
        worker: { concurrency: 16, attempts: 100, backoff: { type: 'fixed', delayMs: 50 } },
      },
      [LedgerProjector],
    );
    await app.sql(
      'create table ledger (id serial primary key, account_id text not null, sequence int not null, message_id uuid not null)',
    );
  });

  afterAll(async () => {
    await app?.close();
    await removePrefix(prefix);
  });

  it('20 keys × 30 events, written in many transactions and handled with 16 at once, come out in order per key; a failure holds back only its key', async () => {
    const accounts = Array.from({ length: 20 }, (_, i) => `acct-${i}`);
    failOnce.add('acct-3:5').add('acct-7:1');
    const em = app.orm.em.fork() as EntityManager;
    for (const id of accounts) em.persist(new Account(id, `${id}@example.com`));
    await em.flush();
    for (let round = 0; round < 30; round++) {
      await Promise.all(
        accounts.map(async (id) => {
          const fork = app.orm.em.fork() as EntityManager;
          const account = await fork.findOneOrFail(Account, id);
          account.deposit(1);
          await fork.flush();
        }),
      );
    }
    await waitUntil(
      'every deposit handled',
      async () => (await app.sql('select count(*)::int as n from ledger'))[0].n === 600,
      60_000,
    );
    const order = await handledOrder();
    for (const id of accounts)
      expect({ id, order: order.get(id) }).toEqual({ id, order: Array.from({ length: 30 }, (_, i) => i + 1) });
    expect(failOnce.size).toBe(0);
    await app.monitor.waitUntilSettled(10_000);
    expect(await app.app.get(OutboxOrdering).heldKeys()).toEqual([]);
  });

  it("a redelivered message handled before promotes its parked successor again: a promotion lost with a dying process does not leave the key asleep until the successor's own timer", async () => {
    const id = 'acct-promote';
    const em = app.orm.em.fork() as EntityManager;
    em.persist(new Account(id, `${id}@example.com`));
    await em.flush();
    // Deposit 1 fails until deposit 2, parked behind it, was set aside a third time (3–4 s, after
    // about 1 and 2 s): it succeeds while deposit 2 sleeps, whatever the machine's pace.
    failUntil.set(`${id}:1`, Infinity);
    for (let i = 0; i < 2; i++) {
      const fork = app.orm.em.fork() as EntityManager;
      (await fork.findOneOrFail(Account, id)).deposit(1);
      await fork.flush();
    }
    const [first, second] = (
      await app.sql(`select id::text from outbox_message where payload->>'accountId' = ? order by seq`, [id])
    ).map((row) => row.id as string);

    // The process that handled deposit 1 "dies" before promoting deposit 2: the promotion is lost.
    const promote = Job.prototype.promote;
    const lost: string[] = [];
    Job.prototype.promote = async function (this: Job) {
      if (this.id === second && lost.length === 0) {
        lost.push(this.id);
        return;
      }
      return promote.call(this);
    };
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      const queue = app.app.get<Queue>(OUTBOX_QUEUE);
      await waitUntil('deposit 2 set aside a third time', async () => {
        const job = await queue.getJob(second);
        return (job?.data.setAside ?? 0) >= 3 && (await job!.getState()) === 'delayed';
      });
      failUntil.delete(`${id}:1`);
      await waitUntil('deposit 1 handled', async () => (await handledOrder()).get(id)?.length === 1, 20_000);
      // Its worker promotes the successor after the commit the line above saw.
      await waitUntil('deposit 2 promoted (and the promotion lost)', () => lost.length > 0);
      expect(lost).toEqual([second]);
      const score = await redis.zscore(queue.toKey('delayed'), second);
      expect(score).not.toBeNull();
      const dueAt = Math.floor(Number(score) / 0x1000);
      expect(dueAt - Date.now()).toBeGreaterThan(1000);

      // The promotion runs inside deposit 1's job: BullMQ marks the job completed only after it.
      await waitUntil("deposit 1's job completed", async () => (await queue.getJobState(first)) === 'completed');
      // BullMQ runs deposit 1's job again, as it does after its worker died: it promotes deposit 2.
      await (await queue.getJob(first))!.retry('completed');
      await waitUntil(
        'deposit 2 handled before its own timer',
        async () => (await handledOrder()).get(id)?.length === 2,
        dueAt - Date.now() - 100,
      );
      expect((await handledOrder()).get(id)).toEqual([1, 2]);
      expect(await app.app.get(OutboxOrdering).heldKeys()).toEqual([]);
    } finally {
      Job.prototype.promote = promote;
      redis.disconnect();
    }
  });
});

describe('moveToFront: a parked message whose turn came is taken next, not after the backlog', () => {
  const prefix = uniquePrefix('front');
  afterAll(() => removePrefix(prefix));

  it('moves a delayed job, and a waiting one from the tail, to the head of the wait list; leaves a finished one alone', async () => {
    const connection = { url: REDIS_URL, maxRetriesPerRequest: null };
    const queue = new Queue('front', { connection, prefix });
    const taken: string[] = [];
    let worker: Worker | undefined;
    try {
      await queue.addBulk(
        Array.from({ length: 50 }, (_, i) => ({ name: 'backlog', data: {}, opts: { jobId: `b${i}` } })),
      );
      const parked = await queue.add('parked', {}, { jobId: 'parked', delay: 600_000 });
      await moveToFront(parked);
      expect(await parked.getState()).toBe('waiting');
      await moveToFront((await queue.getJob('b49'))!);

      worker = new Worker('front', async (job) => void taken.push(job.id!), { connection, prefix, concurrency: 1 });
      await waitUntil('the backlog handled', () => taken.length === 51, 20_000);
      // BullMQ's promote() alone would have put `parked` behind b0 … b48.
      expect(taken.slice(0, 3)).toEqual(['b49', 'parked', 'b0']);
      const done = (await queue.getJob('b0'))!;
      await moveToFront(done);
      expect(await done.getState()).toBe('completed');
    } finally {
      await worker?.close();
      await queue.close();
    }
  });
});
