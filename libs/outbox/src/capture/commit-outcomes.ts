import type { MikroORM, Transaction } from '@mikro-orm/core';
import { Logger } from '@nestjs/common';
import { CompiledQuery } from 'kysely';
import { hookPoolClients, type PgClient, type PoolClientHook, type SendQuery } from '../util/pg-pool-clients.js';
import { COMMIT, ROLLBACK, isThenable } from '../util/pg-statement.js';

/** What PostgreSQL answered to a watched transaction's COMMIT: unknown until the answer came. */
export interface CommitOutcome {
  committed: boolean | undefined;
}

/** Run in the transaction to watch, never sent: it names the client the transaction runs on. */
const WATCH = '/* nest-outbox: watch this transaction commit */';

/**
 * The answer to the COMMIT of an application's transaction, read on its `pg` client. PostgreSQL
 * answers the COMMIT of a transaction in which a statement failed (and the error was caught) with
 * a silent ROLLBACK, which MikroORM reports as a commit: rows leased to this process in such a
 * transaction do not exist, and only this answer tells. Reading it costs no statement.
 */
export class CommitOutcomes {
  private readonly logger = new Logger('Outbox');
  private hook: PoolClientHook | undefined;
  /** Per client, the outcome of the transaction open on it, once something in it asked to watch. */
  private readonly watching = new WeakMap<PgClient, CommitOutcome>();

  constructor(private readonly orm: MikroORM) {}

  /** Hooks the clients of the ORM's `pg` pool for as long as the pool lives. */
  async start(): Promise<void> {
    this.hook ??= await hookPoolClients(
      this.orm,
      { wrap: (client, send) => this.wrap(client, send), released: (client) => this.watching.delete(client) },
      (why) => this.logger.debug(`Rows written in the application's transactions go through a relay (${why}).`),
    );
  }

  /**
   * The outcome of `transaction`'s COMMIT, filled in once PostgreSQL answered it; undefined when
   * its client is not watched (no hooked pool), so nothing may rely on it.
   */
  async watch(transaction: Transaction): Promise<CommitOutcome | undefined> {
    const executor = transaction as { executeQuery?(query: CompiledQuery): Promise<{ rows: unknown[] }> };
    if (!this.hook || typeof executor.executeQuery !== 'function') return undefined;
    // Unwatched, the rows are only written for a relay: nothing here may fail the application's flush.
    const rows = await executor.executeQuery(CompiledQuery.raw(WATCH)).then(
      (reply) => reply.rows,
      () => [],
    );
    return isOutcome(rows[0]) ? rows[0] : undefined;
  }

  private wrap(client: PgClient, send: SendQuery): (...args: unknown[]) => unknown {
    return (...args: unknown[]): unknown => {
      const text = args[0];
      if (text === WATCH) return Promise.resolve(this.watched(client));
      if (typeof text === 'string' && text.endsWith(WATCH)) {
        // A hook outside this one held the transaction's BEGIN and sent it with the marker: the
        // BEGIN goes alone, and the marker is answered here, after it, as the message's last reply.
        const begin = send(text.slice(0, -WATCH.length), ...args.slice(1)) as Promise<unknown>;
        return begin.then((reply) => [reply, this.watched(client)]);
      }
      const outcome = typeof text === 'string' ? this.watching.get(client) : undefined;
      if (!outcome) return send(...args);
      const commits = COMMIT.test(text as string);
      if (!commits && !ROLLBACK.test(text as string)) return send(...args);
      this.watching.delete(client);
      const result = send(...args);
      if (!commits || !isThenable<{ command?: string } | undefined>(result)) return result;
      return result.then((reply) => {
        // Any other answer (another hook's making) tells nothing: the rows then go to a relay.
        if (reply?.command === 'COMMIT') outcome.committed = true;
        else if (reply?.command === 'ROLLBACK') outcome.committed = false;
        return reply;
      });
    };
  }

  /** The marker's answer: the outcome of the transaction open on `client`, one per transaction. */
  private watched(client: PgClient): { command: string; rowCount: number; rows: CommitOutcome[]; fields: [] } {
    let outcome = this.watching.get(client);
    if (!outcome) this.watching.set(client, (outcome = new WatchedOutcome()));
    return { command: 'SELECT', rowCount: 1, rows: [outcome], fields: [] };
  }
}

/** A class of its own, so that only an outcome made here is taken for one. */
class WatchedOutcome implements CommitOutcome {
  committed: boolean | undefined = undefined;
}

function isOutcome(value: unknown): value is CommitOutcome {
  return value instanceof WatchedOutcome;
}
