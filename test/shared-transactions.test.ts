import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable } from '@nestjs/common';
import {
  CommandHandler,
  CqrsModule,
  EventsHandler,
  Saga,
  ofType,
  type ICommandHandler,
  type IEvent,
  type IEventHandler,
} from '@nestjs/cqrs';
import { map, type Observable } from 'rxjs';
import type { Queue } from 'bullmq';
import { OUTBOX_QUEUE, currentMessage, type OutboxJobData } from 'nest-outbox';
import { freshDatabase, withConnection } from './support/database.js';
import {
  Account,
  CAPTURE_FOR_RELAY,
  CountPings,
  Deposited,
  Pinged,
  prepareFixtureDatabase,
  startFixtureApp,
  type FixtureApp,
} from './support/fixture.js';
import { removePrefix, uniquePrefix, REDIS_URL } from './support/redis.js';
import { waitUntil } from './support/wait.js';

/** Deposits of these amounts misbehave (see SharedDeposits). */
const FAILS_ONCE = 13;
const CATCHES_A_FAILED_STATEMENT_ONCE = 7;
const ALWAYS_CATCHES_A_FAILED_STATEMENT = 5;

const runs = new Map<string, number>();

/**
 * Records each run with the transaction it ran in. A deposit of 13 throws on its first run, after
 * writing; a deposit of 7 catches a failed statement on its first run and returns, which leaves
 * the transaction aborted (PostgreSQL then turns COMMIT into a silent ROLLBACK); a deposit of 5
 * does that on every run.
 */
@EventsHandler(Deposited)
class SharedDeposits implements IEventHandler<Deposited> {
  constructor(private readonly em: EntityManager) {}

  async handle(event: Deposited): Promise<void> {
    const id = currentMessage()!.headers.messageId;
    const run = (runs.get(id) ?? 0) + 1;
    runs.set(id, run);
    await this.em.execute('insert into shared_run (message_id, txid) values (?, txid_current())', [id]);
    const catches =
      event.amount === ALWAYS_CATCHES_A_FAILED_STATEMENT ||
      (event.amount === CATCHES_A_FAILED_STATEMENT_ONCE && run === 1);
    if (catches) await this.em.execute('select 1 / 0').catch(() => undefined);
    if (event.amount === FAILS_ONCE && run === 1) throw new Error(`deposit ${id} fails once`);
  }
}

/** Raises an event from the handler, naming the message it handles: captured as caused by it. */
@EventsHandler(Deposited)
class PingBack implements IEventHandler<Deposited> {
  constructor(private readonly em: EntityManager) {}

  async handle(event: Deposited): Promise<void> {
    const account = await this.em.findOneOrFail(Account, event.accountId);
    account.ping(currentMessage()!.headers.messageId);
  }
}

class NotePing {
  constructor(readonly raisedWhileHandling: string) {}
}

/** For each ping the saga turned into a command: the message it was raised for, and the one the command ran in. */
const sagaSaw: Array<{ raisedWhileHandling: string; ranIn: string | undefined }> = [];

@CommandHandler(NotePing)
class NotePingHandler implements ICommandHandler<NotePing> {
  async execute(command: NotePing): Promise<void> {
    sagaSaw.push({ raisedWhileHandling: command.raisedWhileHandling, ranIn: currentMessage()?.headers.messageId });
  }
}

/** Hears committed pings (the EventBus stream) and turns them into commands. */
@Injectable()
class PingSaga {
  @Saga()
  pinged = (events$: Observable<IEvent>): Observable<NotePing> =>
    events$.pipe(
      ofType(Pinged),
      map((event) => new NotePing(event.note)),
    );
}

describe('handler runs sharing a transaction (worker.handlersPerTransaction)', () => {
  let databaseUrl: string;
  const apps: FixtureApp[] = [];
  const prefixes: string[] = [];

  /** Writes `accounts` accounts with one deposit per amount, in one flush of a capture-only app, for a relay. */
  async function writeDeposits(accounts: number, amounts: number[]): Promise<void> {
    const writer = await startFixtureApp(databaseUrl, CAPTURE_FOR_RELAY, []);
    apps.push(writer);
    const em = writer.orm.em.fork() as EntityManager;
    for (let a = 0; a < accounts; a++) {
      const account = new Account(`account-${a}`, `account-${a}@example.com`);
      for (const amount of amounts) account.deposit(amount);
      em.persist(account);
    }
    await em.flush();
  }

  async function startConsumer(handlersPerTransaction = 16): Promise<FixtureApp> {
    const prefix = uniquePrefix('shared');
    prefixes.push(prefix);
    const app = await startFixtureApp(
      databaseUrl,
      { redis: REDIS_URL, prefix, worker: { handlersPerTransaction, attempts: 3, backoff: { delayMs: 50 } } },
      [SharedDeposits, PingBack, CountPings, NotePingHandler, PingSaga],
      [CqrsModule.forRoot()],
    );
    apps.push(app);
    return app;
  }

  /** Committed runs: how many, for how many messages, in how many transactions. */
  async function committedRuns(app: FixtureApp) {
    const [row] = await app.sql(
      `select count(*)::int as runs, count(distinct message_id)::int as messages,
              count(distinct txid)::int as transactions from shared_run`,
    );
    return row as { runs: number; messages: number; transactions: number };
  }

  beforeAll(async () => {
    databaseUrl = await freshDatabase('shared_tx');
    await prepareFixtureDatabase(databaseUrl);
    await withConnection(databaseUrl, (execute) =>
      execute('create table shared_run (message_id uuid not null, txid bigint not null)'),
    );
  });

  afterEach(async () => {
    const cleaner = apps[0];
    await cleaner?.sql('truncate outbox_message, inbox_message, account, effect, shared_run');
    await Promise.all(apps.splice(0).map((app) => app.close()));
    runs.clear();
    sagaSaw.length = 0;
  });

  afterAll(async () => {
    await Promise.all(prefixes.map((prefix) => removePrefix(prefix)));
  });

  it('1,000 deposits: each handled exactly once, in far fewer transactions than runs; events raised by a run name it as their cause', async () => {
    await writeDeposits(
      100,
      Array.from({ length: 10 }, () => 1),
    );
    const consumer = await startConsumer();
    await consumer.monitor.waitUntilSettled(60_000);

    const committed = await committedRuns(consumer);
    expect({ runs: committed.runs, messages: committed.messages }).toEqual({ runs: 1000, messages: 1000 });
    // Without sharing, every run commits in a transaction of its own.
    expect(committed.transactions).toBeLessThan(committed.runs / 2);

    const deposits = await consumer.sql(`select id from outbox_message where type = 'test.deposited.v1'`);
    const pings = await consumer.sql(
      `select headers->>'causationId' as cause from outbox_message where type = 'Pinged' order by 1`,
    );
    expect(pings.map((ping) => ping.cause)).toEqual(deposits.map((deposit) => deposit.id).sort());
    const [{ handledPings }] = await consumer.sql(
      `select count(distinct message_id)::int as "handledPings" from effect where handler = 'CountPings'`,
    );
    expect(handledPings).toBe(1000);
    // Sagas hear each ping in the context of the message whose handler raised it, though the runs
    // committed together: what the saga causes names that message.
    expect(sagaSaw).toHaveLength(1000);
    expect(sagaSaw.filter((saw) => saw.ranIn !== saw.raisedWhileHandling)).toEqual([]);
    expect(consumer.monitor.processCounters().worker).toMatchObject({ retried: 0, deadLettered: 0 });
  });

  it.each([
    ['shared by up to 16 runs', 16],
    ['of its own (the default)', 1],
  ])(
    'a transaction %s: a run that throws or catches a failed statement is retried alone, with a clear error; nothing is lost',
    async (_, handlersPerTransaction) => {
      const amounts = [1, 1, FAILS_ONCE, 1, CATCHES_A_FAILED_STATEMENT_ONCE, 1, ALWAYS_CATCHES_A_FAILED_STATEMENT, 1];
      await writeDeposits(40, amounts);
      const consumer = await startConsumer(handlersPerTransaction);
      const queue = consumer.app.get<Queue<OutboxJobData>>(OUTBOX_QUEUE);
      // Settled but for the dead letters: every message's job finished, completed or failed.
      await waitUntil(
        'every message finished',
        async () => {
          const [{ rows, pending }] = await consumer.sql(
            `select count(*)::int as rows, count(*) filter (where dispatched_at is null)::int as pending from outbox_message`,
          );
          const counts = await queue.getJobCounts('completed', 'failed', 'waiting', 'active', 'delayed');
          return (
            pending === 0 &&
            counts.completed + counts.failed === rows &&
            counts.waiting + counts.active + counts.delayed === 0
          );
        },
        50_000,
      );

      // Every deposit but the 40 of 5 committed its run exactly once: none was lost to a silent rollback.
      const committed = await committedRuns(consumer);
      expect({ runs: committed.runs, messages: committed.messages }).toEqual({ runs: 280, messages: 280 });
      const [{ lost }] = await consumer.sql(
        `select count(*)::int as lost from outbox_message o
          where type = 'test.deposited.v1' and (payload->>'amount')::int <> ?
            and not exists (select 1 from shared_run r where r.message_id = o.id)`,
        [ALWAYS_CATCHES_A_FAILED_STATEMENT],
      );
      expect(lost).toBe(0);

      // The 5s fail every attempt with an error that says what happened and what to do.
      const failed = await queue.getFailed();
      expect(failed).toHaveLength(40);
      expect(failed[0].failedReason).toMatch(
        /SharedDeposits returned .* after a SQL statement of its transaction failed .*em\.transactional\(\)/,
      );
      expect(consumer.monitor.processCounters().worker.deadLettered).toBe(40);
      // Attempts per message: a batchmate's failure never cost a run an attempt. In a shared
      // transaction a failing run is run again alone in the same attempt, so the 13s and 7s need
      // one or two; alone, their first attempt fails.
      const attempts = async (amount: number) => {
        const ids = await consumer.sql(
          `select id from outbox_message where type = 'test.deposited.v1' and (payload->>'amount')::int = ?`,
          [amount],
        );
        return new Set(await Promise.all(ids.map(async ({ id }) => (await queue.getJob(id))!.attemptsMade)));
      };
      expect(await attempts(1)).toEqual(new Set([1]));
      // Rolled back with a failing batchmate, a run runs again alone: at most once more.
      const clean = await consumer.sql(
        `select id from outbox_message where type = 'test.deposited.v1' and (payload->>'amount')::int = 1`,
      );
      expect(Math.max(...clean.map(({ id }) => runs.get(id)!))).toBeLessThanOrEqual(2);
      expect(await attempts(ALWAYS_CATCHES_A_FAILED_STATEMENT)).toEqual(new Set([3]));
      for (const amount of [FAILS_ONCE, CATCHES_A_FAILED_STATEMENT_ONCE]) {
        const made = [...(await attempts(amount))];
        if (handlersPerTransaction === 1) expect(made).toEqual([2]);
        else expect(made.every((n) => n === 1 || n === 2)).toBe(true);
      }
      // Batches without a misbehaving run committed together.
      if (handlersPerTransaction > 1) expect(committed.transactions).toBeLessThan(committed.runs);
    },
  );
});
