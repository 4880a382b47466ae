import { AsyncLocalStorage } from 'node:async_hooks';
import type { MikroORM } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { OutboxError } from '../outbox.errors.js';
import { ensureCommittable } from './committable.js';

/** The parts of a `pg` client and pool the watch uses. */
interface PgClient {
  query(...args: unknown[]): unknown;
}
interface PgPool {
  on(event: 'connect', listener: (client: PgClient) => void): unknown;
  off(event: 'connect', listener: (client: PgClient) => void): unknown;
  /** pg-pool's clients so far: private, so read only if there (else those clients are not watched). */
  _clients?: PgClient[];
}

/** One watched transaction: the client it began on, and what it must commit, once declared. */
interface Watched {
  client?: PgClient;
  why?: () => string;
}

/** What a watched transaction calls before its COMMIT. */
export interface CommitCheck {
  /**
   * Declares that this transaction must commit, or fail with an OutboxError saying `why`:
   * PostgreSQL answers the COMMIT of a transaction in which a statement failed (and the error was
   * caught) with a silent ROLLBACK.
   */
  beforeCommit(em: EntityManager, why: () => string): Promise<void>;
}

const BEGIN = /^\s*(begin|start transaction)\b/i;
const COMMIT = /^\s*commit\s*;?\s*$/i;

/**
 * Turns the silent ROLLBACK PostgreSQL answers to the COMMIT of an aborted transaction into an
 * error, for the transactions it watches. The reply to COMMIT says what happened (its command tag
 * is ROLLBACK), so reading it on the pool's clients costs nothing; a statement before COMMIT
 * (`select 1`, which fails in an aborted transaction) costs a round trip per transaction, the
 * largest part of a handler run's CPU at a low rate. That statement is still sent when the
 * transaction began on a client the watch could not reach (a pool it could not get, or a client
 * that was connected before it started).
 */
export class CommitWatch {
  private readonly current = new AsyncLocalStorage<Watched>();
  private readonly wrapped = new WeakSet<PgClient>();
  private pool: PgPool | undefined;
  private readonly onConnect = (client: PgClient) => this.wrap(client);

  /** Starts watching the clients of `orm`'s `pg` pool; without one, every check asks PostgreSQL. */
  async start(orm: MikroORM): Promise<void> {
    const connection = orm.em.getConnection() as { getNativeClient?: () => Promise<unknown> };
    if (this.pool || typeof connection.getNativeClient !== 'function') return;
    const pool = (await connection.getNativeClient().catch(() => undefined)) as PgPool | undefined;
    if (typeof pool?.on !== 'function' || typeof pool.off !== 'function') return;
    this.pool = pool;
    pool.on('connect', this.onConnect);
    for (const client of Array.isArray(pool._clients) ? pool._clients : []) this.wrap(client);
  }

  /** Stops wrapping new clients; those wrapped go on passing queries through. */
  stop(): void {
    this.pool?.off('connect', this.onConnect);
    this.pool = undefined;
  }

  /** Runs `transaction` (one BEGIN … COMMIT) watched; it rejects if a declared COMMIT rolled back. */
  run<T>(transaction: (check: CommitCheck) => Promise<T>): Promise<T> {
    const watched: Watched = {};
    const check: CommitCheck = {
      beforeCommit: async (em, why) => {
        if (watched.client) watched.why = why;
        else await ensureCommittable(em, why);
      },
    };
    return this.current.run(watched, () => transaction(check));
  }

  private wrap(client: PgClient): void {
    if (this.wrapped.has(client)) return;
    this.wrapped.add(client);
    const query = client.query;
    const current = this.current;
    client.query = function watchedQuery(this: PgClient, ...args: unknown[]): unknown {
      const result = query.apply(this, args);
      const watched = current.getStore();
      const text = args[0];
      if (!watched || typeof text !== 'string') return result;
      if (!watched.client && BEGIN.test(text)) watched.client = client;
      else if (watched.client === client && watched.why && COMMIT.test(text) && isThenable(result)) {
        const why = watched.why;
        return result.then((reply) => {
          // Rejecting the COMMIT makes MikroORM roll back (a no-op now) and fire rollback hooks, not commit hooks.
          if (reply?.command === 'ROLLBACK') throw new OutboxError(why());
          return reply;
        });
      }
      return result;
    };
  }
}

function isThenable(value: unknown): value is Promise<{ command?: string } | undefined> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}
