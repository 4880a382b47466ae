import { afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import type { EventSubscriber } from '@mikro-orm/core';
import { MikroORM, type EntityManager } from '@mikro-orm/postgresql';
import { CommitWatch } from '../libs/outbox/src/consume/commit-watch.js';
import { OutboxError } from '../libs/outbox/src/outbox.errors.js';
import { freshDatabase } from './support/database.js';

let url: string;
let orm: MikroORM | undefined;
let watch: CommitWatch | undefined;

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
    entities: [],
    discovery: { warnWhenNoEntities: false },
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
  async function watchedOrm(): Promise<CommitWatch> {
    await startOrm();
    // Connects the pool's only client before the watch starts: the watch must reach it too.
    await orm!.em.getConnection().execute('create table if not exists watched (value int primary key)');
    await orm!.em.getConnection().execute('truncate watched');
    watch = new CommitWatch();
    await watch.start(orm!);
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
    const result = watcher.run(() =>
      orm!.em.fork().transactional(async (em) => {
        await em.execute('insert into watched (value) values (5)');
        await em.execute('select 1 / 0').catch(() => undefined);
        return 'returned';
      }),
    );
    await expect(result).resolves.toBe('returned');
    expect(await values()).toEqual([]);
  });

  it('ignores the COMMIT of another transaction in the same async context (a handler opening one of its own)', async () => {
    await startOrm(2);
    await orm!.em.getConnection().execute('create table if not exists watched (value int primary key)');
    await orm!.em.getConnection().execute('truncate watched');
    watch = new CommitWatch();
    await watch.start(orm!);
    const result = watch.run((check) =>
      orm!.em.fork().transactional(async (em) => {
        await em.execute('insert into watched (value) values (6)');
        await check.beforeCommit(em as EntityManager, () => 'value 6 cannot commit');
        // A transaction of its own, on the other connection, that silently rolls back: not this one's business.
        await orm!.em.fork().transactional(async (own) => {
          await own.execute('insert into watched (value) values (9)');
          await own.execute('select 1 / 0').catch(() => undefined);
        });
        return 'returned';
      }),
    );
    await expect(result).resolves.toBe('returned');
    expect(await values()).toEqual([6]);
  });

  it('without a pool to watch, asks PostgreSQL before COMMIT: the same error, one statement more', async () => {
    await startOrm();
    await orm!.em.getConnection().execute('create table if not exists watched (value int primary key)');
    await orm!.em.getConnection().execute('truncate watched');
    const unwatched = new CommitWatch();
    sent.length = 0;
    await expect(writeInTransaction(unwatched, 7, false)).resolves.toBe('returned');
    expect(checksSent()).toBe(1);
    await expect(writeInTransaction(unwatched, 8, true)).rejects.toThrow('value 8 cannot commit');
    expect(hooks).toEqual(['commit', 'rollback']);
    expect(await values()).toEqual([7]);
  });
});
