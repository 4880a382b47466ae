import { AsyncLocalStorage } from 'node:async_hooks';
import type { MikroORM } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Logger } from '@nestjs/common';
import { OutboxError } from '../outbox.errors.js';
import { errorText } from '../util/error-text.js';
import { ensureCommittable, explainAborted } from './committable.js';
import { COMMIT, HeldBegins, ROLLBACK } from './held-begin.js';

/** The parts of a `pg` client and pool the watch uses. */
interface PgClient {
  query(...args: unknown[]): unknown;
  once(event: 'end', listener: () => void): unknown;
}
interface PgPool {
  on(event: 'connect', listener: (client: PgClient) => void): unknown;
  on(event: 'release', listener: (error: unknown, client: PgClient) => void): unknown;
  off(event: 'connect', listener: (client: PgClient) => void): unknown;
  off(event: 'release', listener: (error: unknown, client: PgClient) => void): unknown;
  /** pg-pool's clients so far: private, so read only if there (else those clients are not watched). */
  _clients?: PgClient[];
}

/** One watched transaction, as its statements go by. */
interface Watched {
  /** Watched clients with a transaction open in this scope (BEGIN seen, no COMMIT or ROLLBACK yet). */
  open: Set<PgClient>;
  /** Once declared: the client whose COMMIT must commit, and why it must. */
  declared?: { client: PgClient; why: () => string };
  /** The declared transaction ended: later statements in this scope are not its business. */
  ended: boolean;
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

/**
 * Watches the statements of handler transactions on the `pg` pool's clients. It turns the silent
 * ROLLBACK PostgreSQL answers to the COMMIT of an aborted transaction into an error, and sends
 * each one's BEGIN with its first statement (`HeldBegins`): one round trip less per transaction.
 * The reply to COMMIT says what happened (its command tag is ROLLBACK), so reading it costs
 * nothing; a statement before COMMIT (`select 1`, which fails in an aborted transaction) costs a
 * round trip per transaction. That statement is still sent when the watch cannot tell which
 * client holds the transaction: a pool it could not get, a client connected before it started, or
 * more than one transaction open.
 */
export class CommitWatch {
  private readonly logger = new Logger('OutboxWorker');
  private readonly current = new AsyncLocalStorage<Watched>();
  /** Wrapped clients and their own `query` before (undefined: the prototype's), to unwrap on stop. */
  private readonly wrapped = new Map<
    PgClient,
    { original: PgClient['query'] | undefined; wrapper: unknown; query: PgClient['query'] }
  >();
  private pool: PgPool | undefined;
  private readonly onConnect = (client: PgClient) => this.wrap(client);
  /** Each watched transaction's BEGIN travels with its first statement: one round trip less per run. */
  private readonly begins = new HeldBegins<PgClient>();
  private readonly onRelease = (_error: unknown, client: PgClient) => this.begins.drop(client);

  constructor(private readonly orm: MikroORM) {}

  /** Starts watching the clients of the ORM's `pg` pool; without one, every check asks PostgreSQL. */
  async start(): Promise<void> {
    const connection = this.orm.em.getConnection() as { getNativeClient?: () => Promise<unknown> };
    if (this.pool || typeof connection.getNativeClient !== 'function') return;
    let pool: PgPool | undefined;
    try {
      pool = (await connection.getNativeClient()) as PgPool | undefined;
    } catch (error) {
      this.logger.debug(`COMMIT replies are not watched (${errorText(error)}): each run asks before it commits.`);
      return;
    }
    if (typeof pool?.on !== 'function' || typeof pool.off !== 'function') return;
    this.pool = pool;
    pool.on('connect', this.onConnect);
    pool.on('release', this.onRelease);
    for (const client of Array.isArray(pool._clients) ? pool._clients : []) this.wrap(client);
  }

  /** Stops watching: new clients are left alone, wrapped ones get their own `query` back. */
  stop(): void {
    this.pool?.off('connect', this.onConnect);
    this.pool?.off('release', this.onRelease);
    this.pool = undefined;
    for (const [client, { original, wrapper, query }] of this.wrapped) {
      if (client.query !== wrapper) continue; // wrapped again since, by someone else: leave it
      this.begins.flush(client, (...args) => query.apply(client, args));
      if (original) client.query = original;
      else delete (client as Partial<PgClient>).query;
    }
    this.wrapped.clear();
  }

  /** Runs `transaction` (one BEGIN … COMMIT) watched; it rejects if a declared COMMIT rolled back. */
  run<T>(transaction: (check: CommitCheck) => Promise<T>): Promise<T> {
    const watched: Watched = { open: new Set(), ended: false };
    const check: CommitCheck = {
      beforeCommit: async (em, why) => {
        // Exactly one transaction open, on a watched client: this one's. Else ask PostgreSQL.
        const [client] = watched.open;
        if (watched.open.size === 1) watched.declared = { client, why };
        else await ensureCommittable(em, why);
      },
    };
    return this.current.run(watched, () => transaction(check));
  }

  private wrap(client: PgClient): void {
    if (this.wrapped.has(client)) return;
    const original = Object.prototype.hasOwnProperty.call(client, 'query') ? client.query : undefined;
    const query = client.query;
    const current = this.current;
    const begins = this.begins;
    const wrapper = function watchedQuery(this: PgClient, ...args: unknown[]): unknown {
      const watched = current.getStore();
      const text = args[0];
      const inScope = watched !== undefined && !watched.ended && typeof text === 'string';
      let result: unknown = inScope ? begins.hold(client, args) : undefined;
      result ??= begins.holds(client)
        ? begins.send(client, (...sent: unknown[]) => query.apply(this, sent), args)
        : query.apply(this, args);
      if (!inScope) return result;
      const declared = watched.declared?.client === client ? watched.declared : undefined;
      const commits = COMMIT.test(text);
      if (BEGIN.test(text)) watched.open.add(client);
      else if (commits || ROLLBACK.test(text)) {
        watched.open.delete(client);
        if (declared) watched.ended = true;
      }
      if (!declared || !isThenable(result)) return result;
      const why = declared.why;
      return result.then(
        (reply) => {
          // Rejecting the COMMIT makes MikroORM roll back (a no-op now) and fire rollback hooks, not commit hooks.
          if (commits && reply?.command === 'ROLLBACK') throw new OutboxError(why());
          return reply;
        },
        (error: unknown) => {
          // A statement after the declaration (MikroORM's closing flush, a commit hook) found the
          // transaction aborted: the same cause, said the same way.
          throw explainAborted(error, why);
        },
      );
    };
    client.query = wrapper;
    this.wrapped.set(client, { original, wrapper, query });
    client.once('end', () => this.wrapped.delete(client));
  }
}

function isThenable(value: unknown): value is Promise<{ command?: string } | undefined> {
  return typeof (value as { then?: unknown } | null)?.then === 'function';
}
