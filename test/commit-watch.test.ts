import { afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { IsolationLevel, type EventSubscriber } from '@mikro-orm/core';
import { Entity, PrimaryKey, ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { MikroORM, type AbstractSqlConnection, type EntityManager } from '@mikro-orm/postgresql';
import { CompiledQuery } from 'kysely';
import { CommitWatch } from '../libs/outbox/src/consume/commit-watch.js';
import { OutboxError } from '../libs/outbox/src/outbox.errors.js';
import { freshDatabase } from './support/database.js';

let url: string;
let orm: MikroORM | undefined;
let watch: CommitWatch | undefined;

/** A row of the table the tests write, as an entity: what MikroORM's closing flush inserts. */
@Entity({ tableName: 'watched' })
class WatchedValue {
  @PrimaryKey({ type: 'integer', autoincrement: false })
  value!: number;
}

/** Every statement the ORM sent, and the transaction hooks it fired. */
const sent: string[] = [];
const hooks: string[] = [];

const hookRecorder: EventSubscriber = {
  afterTransactionCommit: () => void hooks.push('commit'),
  afterTransactionRollback: () => void hooks.push('rollback'),
};

async function startOrm(connections = 1): Promise<MikroORM> {
  orm = await MikroORM.init({
    clientUrl: url,
    entities: [WatchedValue],
    metadataProvider: ReflectMetadataProvider,
    // One connection: the client connected before the watch started is the one every transaction uses.
    pool: { min: 0, max: connections },
    debug: ['query'],
    logger: (line) => void sent.push(line),
    subscribers: [hookRecorder],
  });
  return orm;
}

/** A transaction that writes `value` and, if `catches`, catches a failed statement, then declares it must commit. */
function writeInTransaction(watcher: CommitWatch, value: number, catches: boolean): Promise<string> {
  return watcher.run((check) =>
    orm!.em.fork().transactional(async (em) => {
      await em.execute('insert into watched (value) values (?)', [value]);
      if (catches) await em.execute('select 1 / 0').catch(() => undefined);
      await check.beforeCommit(em as EntityManager, () => `value ${value} cannot commit`);
      return 'returned';
    }),
  );
}

/** A transaction that writes `value`, catches a failed statement and returns: PostgreSQL rolls it back without a word. */
function rollsBackSilently(value: number): Promise<void> {
  return orm!.em.fork().transactional(async (em) => {
    await em.execute('insert into watched (value) values (?)', [value]);
    await em.execute('select 1 / 0').catch(() => undefined);
  });
}

const checksSent = () => sent.filter((line) => /select 1\b(?! \/)/.test(line)).length;
const values = async () =>
  (await orm!.em.getConnection().execute<Array<{ value: number }>>('select value from watched order by value')).map(
    (row) => row.value,
  );

beforeAll(async () => {
  url = await freshDatabase('commit_watch');
});

afterEach(async () => {
  watch?.stop();
  await orm?.close(true);
  orm = undefined;
  sent.length = 0;
  hooks.length = 0;
});

describe('CommitWatch: a COMMIT that PostgreSQL turned into a ROLLBACK fails the transaction', () => {
  async function watchedOrm(connections = 1): Promise<CommitWatch> {
    await startOrm(connections);
    // Connects the pool's only client before the watch starts: the watch must reach it too.
    await orm!.em.getConnection().execute('create table if not exists watched (value int primary key)');
    await orm!.em.getConnection().execute('truncate watched');
    watch = new CommitWatch(orm!);
    await watch.start();
    return watch;
  }

  it('reads the reply to COMMIT: a clean transaction commits without a statement before it', async () => {
    const watcher = await watchedOrm();
    sent.length = 0;
    await expect(writeInTransaction(watcher, 1, false)).resolves.toBe('returned');
    await expect(writeInTransaction(watcher, 2, false)).resolves.toBe('returned');
    expect(await values()).toEqual([1, 2]);
    expect(checksSent()).toBe(0);
    expect(hooks).toEqual(['commit', 'commit']);
  });

  it('rejects with the reason when a statement failed and was caught; commit hooks do not fire, the connection is free', async () => {
    const watcher = await watchedOrm();
    sent.length = 0;
    const failed = writeInTransaction(watcher, 3, true);
    await expect(failed).rejects.toThrow(OutboxError);
    await expect(failed).rejects.toThrow('value 3 cannot commit');
    expect(checksSent()).toBe(0);
    expect(hooks).toEqual(['rollback']);
    // The pool's one connection came back idle: the next transaction runs and commits.
    await expect(writeInTransaction(watcher, 4, false)).resolves.toBe('returned');
    expect(await values()).toEqual([4]);
  });

  it('leaves a transaction that did not declare it must commit as MikroORM leaves it', async () => {
    const watcher = await watchedOrm();
    await expect(watcher.run(() => rollsBackSilently(5))).resolves.toBeUndefined();
    expect(await values()).toEqual([]);
  });

  it('ignores the COMMIT of another transaction in the same async context (a handler opening one of its own)', async () => {
    const watcher = await watchedOrm(2);
    const result = watcher.run((check) =>
      orm!.em.fork().transactional(async (em) => {
        await em.execute('insert into watched (value) values (6)');
        await check.beforeCommit(em as EntityManager, () => 'value 6 cannot commit');
        // A transaction of its own, on the other connection, that silently rolls back: not this one's business.
        await rollsBackSilently(9);
        return 'returned';
      }),
    );
    await expect(result).resolves.toBe('returned');
    expect(await values()).toEqual([6]);
  });

  it("says why when MikroORM's closing flush finds the transaction aborted (an entity persisted after the caught failure)", async () => {
    const watcher = await watchedOrm();
    const result = watcher.run((check) =>
      orm!.em.fork().transactional(async (em) => {
        await em.execute('select 1 / 0').catch(() => undefined);
        em.persist(em.create(WatchedValue, { value: 10 }));
        await check.beforeCommit(em as EntityManager, () => 'value 10 cannot commit');
      }),
    );
    // MikroORM wraps what a statement threw in its DriverException; the reason is its message.
    await expect(result).rejects.toThrow('value 10 cannot commit');
    expect(await values()).toEqual([]);
  });

  it('watches concurrent transactions on clients connected after it started, each with its own reason', async () => {
    const watcher = await watchedOrm(4);
    sent.length = 0;
    const outcomes = await Promise.allSettled(
      [21, 22, 23, 24, 25, 26, 27, 28].map((value) => writeInTransaction(watcher, value, value % 2 === 0)),
    );
    expect(
      outcomes.map((outcome) => (outcome.status === 'fulfilled' ? outcome.value : outcome.reason.message)),
    ).toEqual(
      [21, 22, 23, 24, 25, 26, 27, 28].map((value) => (value % 2 === 0 ? `value ${value} cannot commit` : 'returned')),
    );
    expect(await values()).toEqual([21, 23, 25, 27]);
    expect(checksSent()).toBe(0);
  });

  it('reads the reply of a transaction begun with an isolation level (START TRANSACTION)', async () => {
    const watcher = await watchedOrm();
    sent.length = 0;
    const result = watcher.run((check) =>
      orm!.em.fork().transactional(
        async (em) => {
          await em.execute('insert into watched (value) values (11)');
          await em.execute('select 1 / 0').catch(() => undefined);
          await check.beforeCommit(em as EntityManager, () => 'value 11 cannot commit');
        },
        { isolationLevel: IsolationLevel.SERIALIZABLE },
      ),
    );
    await expect(result).rejects.toThrow('value 11 cannot commit');
    expect(checksSent()).toBe(0);
  });

  it('is done with its transaction once it committed: a later one in the same async context is not blamed', async () => {
    const watcher = await watchedOrm();
    const result = watcher.run(async (check) => {
      await orm!.em.fork().transactional(async (em) => {
        await em.execute('insert into watched (value) values (12)');
        await check.beforeCommit(em as EntityManager, () => 'value 12 cannot commit');
      });
      // E.g. a commit hook's own transaction, on the connection just released.
      await rollsBackSilently(13);
      return 'returned';
    });
    await expect(result).resolves.toBe('returned');
    expect(await values()).toEqual([12]);
  });

  it('gives the clients their own query back when it stops', async () => {
    const watcher = await watchedOrm();
    const pool = (await orm!.em.getConnection().getNativeClient()) as unknown as { _clients: object[] };
    const [client] = pool._clients;
    expect(Object.prototype.hasOwnProperty.call(client, 'query')).toBe(true);
    watcher.stop();
    expect(Object.prototype.hasOwnProperty.call(client, 'query')).toBe(false);
    sent.length = 0;
    // Unwatched now: the check asks PostgreSQL again.
    await expect(writeInTransaction(watcher, 14, false)).resolves.toBe('returned');
    expect(checksSent()).toBe(1);
  });

  it('without a pool to watch, asks PostgreSQL before COMMIT: the same error, one statement more', async () => {
    await startOrm();
    await orm!.em.getConnection().execute('create table if not exists watched (value int primary key)');
    await orm!.em.getConnection().execute('truncate watched');
    const unwatched = new CommitWatch(orm!);
    sent.length = 0;
    await expect(writeInTransaction(unwatched, 7, false)).resolves.toBe('returned');
    expect(checksSent()).toBe(1);
    await expect(writeInTransaction(unwatched, 8, true)).rejects.toThrow('value 8 cannot commit');
    expect(hooks).toEqual(['commit', 'rollback']);
    expect(await values()).toEqual([7]);
  });
});

/** The pool's clients as these tests reach them: node-postgres's own. */
interface PgClient {
  query(...args: unknown[]): Promise<{ command: string; rows: Array<Record<string, unknown>> }>;
  release(): void;
}
interface PgPool {
  _clients: PgClient[];
  connect(): Promise<PgClient>;
}

describe('CommitWatch: a watched transaction sends its BEGIN with its first statement', () => {
  let messages: string[];

  /** One connection, its messages to PostgreSQL recorded beneath the watch. */
  async function recordedOrm(): Promise<{ watcher: CommitWatch; pool: PgPool }> {
    await startOrm();
    await orm!.em.getConnection().execute('create table if not exists watched (value int primary key)');
    await orm!.em.getConnection().execute('truncate watched');
    const pool = (await orm!.em.getConnection().getNativeClient()) as unknown as PgPool;
    const [client] = pool._clients;
    const query = client.query;
    messages = [];
    client.query = function (this: PgClient, ...args: unknown[]) {
      messages.push(typeof args[0] === 'string' ? args[0] : '(query object)');
      return query.apply(this, args);
    };
    watch = new CommitWatch(orm!);
    await watch.start();
    return { watcher: watch, pool };
  }

  const alone = (text: string) => messages.filter((message) => message.trim().toLowerCase() === text);

  it('one message for BEGIN and the first statement, which runs inside the transaction', async () => {
    const { watcher } = await recordedOrm();
    const undone = watcher.run(() =>
      orm!.em.fork().transactional(async (em) => {
        await em.execute('insert into watched (value) values (31)');
        await em.execute('insert into watched (value) values (32)');
        throw new Error('undo');
      }),
    );
    await expect(undone).rejects.toThrow('undo');
    // Both inserts were rolled back: the first one ran in the transaction too.
    expect(await values()).toEqual([]);
    await expect(writeInTransaction(watcher, 33, false)).resolves.toBe('returned');
    expect(await values()).toEqual([33]);
    expect(messages).toContain('begin;\ninsert into watched (value) values (31)');
    expect(messages).toContain('begin;\ninsert into watched (value) values (33)');
    expect(alone('begin')).toEqual([]);
  });

  it('a first statement that fails leaves nothing behind, and the connection is free', async () => {
    const { watcher } = await recordedOrm();
    const failed = watcher.run(() =>
      orm!.em.fork().transactional(async (em) => {
        await em.execute('select 1 / 0');
      }),
    );
    await expect(failed).rejects.toThrow(/division by zero/);
    await expect(writeInTransaction(watcher, 34, false)).resolves.toBe('returned');
    expect(await values()).toEqual([34]);
  });

  it('a statement with bind parameters follows BEGIN as before, inside the transaction', async () => {
    const { watcher } = await recordedOrm();
    const undone = watcher.run(() =>
      orm!.em.fork().transactional(async (em) => {
        const ctx = em.getTransactionContext<ReturnType<AbstractSqlConnection['getClient']>>()!;
        await ctx.executeQuery(CompiledQuery.raw('insert into watched (value) values ($1)', [35]));
        throw new Error('undo');
      }),
    );
    await expect(undone).rejects.toThrow('undo');
    expect(await values()).toEqual([]);
    expect(alone('begin')).toHaveLength(1);
  });

  it('keeps the isolation level a transaction was begun with', async () => {
    const { watcher } = await recordedOrm();
    const level = await watcher.run(() =>
      orm!.em
        .fork()
        .transactional(
          async (em) =>
            (await em.execute<Array<{ level: string }>>("select current_setting('transaction_isolation') as level"))[0]
              .level,
          { isolationLevel: IsolationLevel.SERIALIZABLE },
        ),
    );
    expect(level).toBe('serializable');
    expect(messages.some((message) => /^start transaction isolation level serializable;\nselect/.test(message))).toBe(
      true,
    );
  });

  it('once a message that carried BEGIN failed, the next statements fail unsent until a ROLLBACK: none runs outside', async () => {
    const { watcher, pool } = await recordedOrm();
    const client = await pool.connect();
    const stored = async () => (await client.query('select value from watched order by value')).rows;
    try {
      await watcher.run(async () => {
        // Held, then sent with the insert: PostgreSQL refuses it, and the insert with it.
        await client.query('start transaction isolation level bogus');
        await expect(client.query('insert into watched (value) values (50)')).rejects.toThrow(/bogus/);
        // No transaction began: sent, this insert would commit on its own.
        await expect(client.query('insert into watched (value) values (51)')).rejects.toThrow(/bogus/);
        await client.query('rollback');
      });
      expect(await stored()).toEqual([]);
      await client.query('insert into watched (value) values (52)');
      expect(await stored()).toEqual([{ value: 52 }]);
    } finally {
      client.release();
    }
  });

  it('says where a statement failed counting from the statement, not from BEGIN before it', async () => {
    const { watcher, pool } = await recordedOrm();
    const client = await pool.connect();
    try {
      const alone = (await client.query('select nosuchcol from watched').catch((error: unknown) => error)) as {
        position?: string;
      };
      const withBegin = (await watcher.run(async () => {
        await client.query('begin');
        return client.query('select nosuchcol from watched').catch((error: unknown) => error);
      })) as { position?: string };
      await client.query('rollback');
      expect(alone.position).toBe('8');
      expect(withBegin.position).toBe(alone.position);
    } finally {
      client.release();
    }
  });

  it('drops a BEGIN no statement followed when its client goes back to the pool', async () => {
    const { watcher, pool } = await recordedOrm();
    await watcher.run(async () => {
      const client = await pool.connect();
      await client.query('begin');
      client.release();
    });
    // The pool's one client again, outside any transaction: a savepoint needs a transaction block.
    const client = await pool.connect();
    try {
      await expect(client.query('savepoint s')).rejects.toThrow(/transaction blocks/);
    } finally {
      client.release();
    }
  });

  it('sends a BEGIN still held when it stops, ahead of what the client runs next', async () => {
    const { watcher, pool } = await recordedOrm();
    const client = await watcher.run(async () => {
      const held = await pool.connect();
      await held.query('begin');
      return held;
    });
    try {
      watcher.stop();
      await expect(client.query('savepoint s')).resolves.toMatchObject({ command: 'SAVEPOINT' });
      await client.query('rollback');
    } finally {
      client.release();
    }
  });
});
