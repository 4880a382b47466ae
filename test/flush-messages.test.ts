import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { RequestContext, type EventSubscriber, type TransactionEventArgs } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import pg from 'pg';
import { AT_COMMIT } from '../libs/outbox/src/store/outbox-row.insert.js';
import { freshDatabase, withConnection } from './support/database.js';
import { OutboxService } from 'nest-outbox';
import {
  Account,
  CAPTURE_ONLY,
  Deposited,
  prepareFixtureDatabase,
  startFixtureApp,
  type FixtureApp,
} from './support/fixture.js';

/** Every message the pool's clients send, recorded beneath the outbox's hook: text, and bind parameters if any. */
const sent: Array<{ text: string; params: number }> = [];
const clientQuery = pg.Client.prototype.query;

beforeAll(() => {
  pg.Client.prototype.query = function (this: unknown, ...args: unknown[]) {
    const params = Array.isArray(args[1]) ? args[1].length : 0;
    sent.push({ text: typeof args[0] === 'string' ? args[0] : '(query object)', params });
    return (clientQuery as (...a: unknown[]) => unknown).apply(this, args);
  } as typeof clientQuery;
});

afterAll(() => {
  pg.Client.prototype.query = clientQuery;
});

const texts = () => sent.map(({ text }) => text);
const loneBegins = () => texts().filter((text) => text.trim().toLowerCase() === 'begin');
const outboxInserts = () => sent.filter(({ text }) => /insert into "outbox_message"/.test(text));
const deposit666 = /violates check constraint "no_666"/;

/** What a subscriber registered after the outbox's does before each COMMIT, while a test sets it. */
let beforeCommit: ((args: TransactionEventArgs) => Promise<void>) | undefined;
const actsBeforeCommit: EventSubscriber = {
  beforeTransactionCommit: async (args) => beforeCommit?.(args),
};

async function withBeforeCommit(
  act: (args: TransactionEventArgs) => Promise<void>,
  body: () => Promise<void>,
): Promise<void> {
  beforeCommit = act;
  try {
    await body();
  } finally {
    beforeCommit = undefined;
  }
}

for (const conforming of ['on', 'off'] as const) {
  describe(`a flush that writes outbox rows: BEGIN with its first statement, the rows with its COMMIT (standard_conforming_strings ${conforming})`, () => {
    let fixture: FixtureApp;
    const fork = () => fixture.orm.em.fork() as EntityManager;
    const accounts = async () =>
      ((await fixture.sql('select id from account order by id')) as Array<{ id: string }>).map((row) => row.id);
    const rows = () =>
      fixture.sql('select aggregate_id, key, payload, headers from outbox_message order by seq') as Promise<
        Array<{ aggregate_id: string; key: string; payload: Record<string, unknown>; headers: Record<string, unknown> }>
      >;

    beforeAll(async () => {
      const url = await freshDatabase(`rows_at_commit_${conforming}`);
      await prepareFixtureDatabase(url);
      await withConnection(url, async (execute) => {
        await execute(
          `alter database "${new URL(url).pathname.slice(1)}" set standard_conforming_strings = ${conforming}`,
        );
        // A row the INSERT cannot write: the way to make the carried statement fail.
        await execute(`alter table outbox_message add constraint no_666 check (payload::text not like '%666%')`);
      });
      fixture = await startFixtureApp(url, CAPTURE_ONLY);
      fixture.orm.em.getEventManager().registerSubscriber(actsBeforeCommit);
    });

    afterAll(async () => {
      await fixture?.close();
    });

    beforeEach(async () => {
      await fixture.sql('truncate outbox_message, account');
      sent.length = 0;
    });

    afterEach(async () => {
      // Whatever the test did, the pool's connections are free and write again.
      const em = fork();
      const account = new Account('after', 'after@example.com');
      account.deposit(1);
      await em.persist(account).flush();
      expect(await accounts()).toContain('after');
    });

    it('two messages: BEGIN with the first statement, the rows with COMMIT; all of it commits', async () => {
      const em = fork();
      const account = new Account('a1', 'a1@example.com');
      account.deposit(10);
      account.deposit(5);
      await em.persist(account).flush();

      expect(texts().filter((text) => /^begin;\ninsert into "account"/.test(text))).toHaveLength(1);
      expect(loneBegins()).toEqual([]);
      expect(texts().filter((text) => text.includes('flush with rows'))).toEqual([]);

      const inserts = outboxInserts();
      expect(inserts).toHaveLength(1);
      expect(inserts[0].text.startsWith(AT_COMMIT)).toBe(true);
      expect(inserts[0].text).toMatch(/;\ncommit$/);
      expect(inserts[0].params).toBe(0);
      expect(sent.filter(({ text }) => text.trim().toLowerCase() === 'commit')).toEqual([]);
      expect(await accounts()).toEqual(['a1']);
      expect((await rows()).map((row) => row.payload.amount)).toEqual([10, 5]);
    });

    it('text with quotes, backslashes, newlines and any script arrives as it was written', async () => {
      const id = `O'Brien \\ "q" \\\\n\n\tü€🚀 ''`;
      const em = fork();
      const account = new Account(id, 'odd@example.com');
      account.deposit(7);
      await em.persist(account).flush();

      const [row] = await rows();
      expect(row.aggregate_id).toBe(id);
      expect(row.key).toBe(`Account:${id}`);
      expect(row.payload).toEqual({ accountId: id, amount: 7, sequence: 1 });
      expect(outboxInserts()[0].text.startsWith(AT_COMMIT)).toBe(true);
    });

    it('rows whose INSERT fails fail the flush with its error, and nothing of it commits', async () => {
      const em = fork();
      const account = new Account('a2', 'a2@example.com');
      account.deposit(666);
      await expect(em.persist(account).flush()).rejects.toThrow(deposit666);
      expect(await accounts()).toEqual([]);
      expect(await rows()).toEqual([]);
    });

    it('a statement before COMMIT sends the rows ahead, alone; they commit', async () => {
      await withBeforeCommit(
        async ({ em }) => void (await (em as EntityManager).execute('select 1 as before_commit')),
        async () => {
          const em = fork();
          const account = new Account('a3', 'a3@example.com');
          account.deposit(3);
          await em.persist(account).flush();
        },
      );
      const texts = sent.map(({ text }) => text);
      const insert = texts.findIndex((text) => text.startsWith(AT_COMMIT));
      expect(texts[insert]).not.toMatch(/commit$/);
      expect(texts[insert + 1]).toMatch(/before_commit/);
      expect(texts[insert + 2].trim().toLowerCase()).toBe('commit');
      expect(await accounts()).toEqual(['a3']);
      expect(await rows()).toHaveLength(1);
    });

    /**
     * Flushes a new account with one deposit while a subscriber runs `sql` before COMMIT and
     * catches its error, which sends the rows ahead of it; the flush must fail with `flushError`.
     * Returns the error the subscriber caught.
     */
    async function flushBesideCaughtStatement(
      sql: string,
      id: string,
      amount: number,
      flushError: RegExp,
    ): Promise<unknown> {
      let caught: unknown;
      await withBeforeCommit(
        async ({ em }) => {
          caught = await (em as EntityManager).execute(sql).catch((error: unknown) => error);
        },
        async () => {
          const account = new Account(id, `${id}@example.com`);
          account.deposit(amount);
          await expect(fork().persist(account).flush()).rejects.toThrow(flushError);
        },
      );
      return caught;
    }

    it('rows sent ahead that fail make COMMIT fail too, even when that statement caught their error', async () => {
      const caught = await flushBesideCaughtStatement('select 1', 'a4', 666, deposit666);
      expect(String(caught)).toMatch(deposit666);
      expect(await accounts()).toEqual([]);
      expect(await rows()).toEqual([]);
    });

    it('rows sent ahead that went in, then a statement whose error was caught: COMMIT fails and says why', async () => {
      const caught = await flushBesideCaughtStatement('select 1 / 0', 'a4b', 4, /rolled back instead of committed/);
      expect(String(caught)).toMatch(/division by zero/);
      expect(await accounts()).toEqual([]);
      expect(await rows()).toEqual([]);
    });

    it('a flush whose transaction rolls back before COMMIT never sends its rows', async () => {
      await withBeforeCommit(
        () => Promise.reject(new Error('not this time')),
        async () => {
          const em = fork();
          const account = new Account('a5', 'a5@example.com');
          account.deposit(5);
          await expect(em.persist(account).flush()).rejects.toThrow('not this time');
        },
      );
      expect(outboxInserts()).toEqual([]);
      expect(await accounts()).toEqual([]);
    });

    it('a flush without rows, and a transaction of the application, keep their BEGIN apart', async () => {
      const em = fork();
      em.persist(new Account('quiet', 'quiet@example.com'));
      await em.flush();
      await fork().transactional((tx) => tx.execute(`insert into account values ('own', 'own@example.com', 0, 0)`));

      expect(loneBegins()).toHaveLength(2);
      expect(texts().filter((text) => text.startsWith('begin;'))).toEqual([]);
      expect(await accounts()).toEqual(['own', 'quiet']);
    });

    it('with flushes and other transactions beginning together, no more BEGINs are held than flushes, and all commit', async () => {
      const flushWithEvent = (id: string) => {
        const account = new Account(id, `${id}@example.com`);
        account.deposit(1);
        return fork().persist(account).flush();
      };
      const ownTransaction = (id: string) =>
        fork().transactional((tx) => tx.execute(`insert into account values ('${id}', '${id}@example.com', 0, 0)`));
      await Promise.all(
        Array.from({ length: 24 }, (_, i) => (i % 2 ? ownTransaction(`t${i}`) : flushWithEvent(`f${i}`))),
      );

      // Each transaction began once: alone, or with its own first statement (a flush's place may go
      // to a transaction that began at the same moment).
      const combined = texts().filter((text) => text.startsWith('begin;\n'));
      expect(combined.length + loneBegins().length).toBe(24);
      expect(combined.length).toBeLessThanOrEqual(12);
      expect(await accounts()).toHaveLength(24);
      expect(await rows()).toHaveLength(12);
    });

    it('a statement fired before COMMIT and not awaited stays in the transaction, which commits or fails whole', async () => {
      let stray: Promise<unknown> | undefined;
      await withBeforeCommit(
        async ({ em }) => {
          stray = (em as EntityManager)
            .execute(`insert into account values ('stray', 'stray@example.com', 0, 0)`)
            .catch((error: unknown) => error);
        },
        async () => {
          const em = fork();
          const account = new Account('a9', 'a9@example.com');
          account.deposit(666);
          await expect(em.persist(account).flush()).rejects.toThrow(deposit666);
        },
      );
      expect(String(await stray)).toMatch(deposit666);
      expect(await accounts()).toEqual([]);
    });

    it('a first statement that fails fails the flush, commits nothing, and frees the connection', async () => {
      await fixture.sql(`insert into account values ('taken', 'taken@example.com', 0, 0)`);
      const em = fork();
      const account = new Account('a8', 'taken@example.com');
      account.deposit(8);
      await expect(em.persist(account).flush()).rejects.toThrow(/unique|duplicate/i);
      expect(await accounts()).toEqual(['taken']);
      expect(await rows()).toEqual([]);
    });

    it('a key that is not a string (from untyped code) is written as bind parameters write it', async () => {
      await RequestContext.create(fork(), async () => {
        fixture.app.get(OutboxService).publish(new Deposited('k', 1, 1), { key: 42 as unknown as string });
        const account = new Account('a10', 'a10@example.com');
        account.deposit(10);
        // The request's EntityManager, which publish() wrote to.
        await fixture.orm.em.persist(account).flush();
      });
      expect((await rows()).map((row) => row.key).sort()).toEqual(['42', 'Account:a10']);
    });

    it("inside the caller's transaction, and past 100 rows, the rows are written at once, unmarked", async () => {
      await fork().transactional(async (em) => {
        const account = new Account('a6', 'a6@example.com');
        account.deposit(6);
        await em.persist(account).flush();
      });
      const em = fork();
      const big = new Account('a7', 'a7@example.com');
      for (let i = 0; i < 101; i++) big.deposit(1);
      await em.persist(big).flush();

      const inserts = outboxInserts();
      // Nine columns a row, and three of its lease: leased to this process, which sends them on commit.
      expect(inserts.map(({ text, params }) => [text.startsWith(AT_COMMIT), params])).toEqual([
        [false, 0],
        [false, 101 * 12],
      ]);
      expect(await rows()).toHaveLength(102);
    });
  });
}
