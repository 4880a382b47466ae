import { AsyncLocalStorage } from 'node:async_hooks';
import type { MikroORM } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { Logger } from '@nestjs/common';
import { OutboxError } from '../outbox.errors.js';
import { ensureCommittable, explainAborted } from './committable.js';
import { hookPoolClients, type PgClient, type PoolClientHook, type SendQuery } from '../util/pg-pool-clients.js';
import { COMMIT, ROLLBACK, isThenable } from '../util/pg-statement.js';
import { HeldBegins } from '../util/held-begin.js';

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
  private hook: PoolClientHook | undefined;
  /** Each watched transaction's BEGIN travels with its first statement: one round trip less per run. */
  private readonly begins = new HeldBegins<PgClient>();

  constructor(private readonly orm: MikroORM) {}

  /** Starts watching the clients of the ORM's `pg` pool; without one, every check asks PostgreSQL. */
  async start(): Promise<void> {
    this.hook ??= await hookPoolClients(
      this.orm,
      {
        wrap: (client, send) => this.wrap(client, send),
        released: (client) => this.begins.drop(client),
        unwrapping: (client, send) => this.begins.flush(client, send),
      },
      (why) => this.logger.debug(`COMMIT replies are not watched (${why}): each run asks before it commits.`),
    );
  }

  /** Stops watching: new clients are left alone, wrapped ones get their own `query` back. */
  stop(): void {
    this.hook?.remove();
    this.hook = undefined;
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

  private wrap(client: PgClient, send: SendQuery): (...args: unknown[]) => unknown {
    const current = this.current;
    const begins = this.begins;
    return function watchedQuery(...args: unknown[]): unknown {
      const watched = current.getStore();
      const text = args[0];
      const inScope = watched !== undefined && !watched.ended && typeof text === 'string';
      let result: unknown = inScope ? begins.hold(client, args) : undefined;
      result ??= begins.send(client, send, args);
      if (!inScope) return result;
      const declared = watched.declared?.client === client ? watched.declared : undefined;
      const commits = COMMIT.test(text);
      if (BEGIN.test(text)) watched.open.add(client);
      else if (commits || ROLLBACK.test(text)) {
        watched.open.delete(client);
        if (declared) watched.ended = true;
      }
      if (!declared || !isThenable<{ command?: string } | undefined>(result)) return result;
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
  }
}
