import type { SendQuery } from './pg-pool-clients.js';
import { COMMIT, ROLLBACK, isPlainText, returnsPromise } from './pg-statement.js';

/**
 * One statement that opens a transaction, as Kysely sends it for MikroORM. Not one with a `--`
 * comment, which would swallow the `;` put after it.
 */
const LONE_BEGIN = /^\s*(begin|start transaction)\b[^;-]*;?\s*$/i;

/**
 * A transaction's BEGIN, sent in one round trip with the statement after it. The BEGIN of a
 * transaction the caller picked (a handler's, a flush's with outbox rows) is held back and
 * answered at once; the transaction's first statement then carries it, in the same
 * simple-protocol message: `begin; insert …`. MikroORM prints the values into its statements, so
 * its statements are plain text and can share a message; a statement with bind parameters cannot,
 * and is sent once BEGIN has answered, as before (an abort that arrives meanwhile cancels BEGIN,
 * not it: only raw Kysely statements take that path).
 *
 * PostgreSQL runs a message's statements in order and stops at the first that fails, so the first
 * statement never runs outside the transaction. When a message that carried BEGIN failed, the
 * client's next statement first asks whether a transaction is open: if BEGIN did not take, the
 * statements fail with that message's error, unsent, until a ROLLBACK (a COMMIT rolls back and
 * fails), so none of them can run outside it either. One exception: a cursor queued behind a
 * BEGIN sent on its own (a stream as the transaction's first statement) is sent before BEGIN's
 * answer is known.
 */
export class HeldBegins<C extends object> {
  private readonly held = new WeakMap<C, string>();
  /** Clients whose BEGIN may have failed: the error their statements fail with until a ROLLBACK. */
  private readonly failed = new WeakMap<C, unknown>();

  /** Holds `args` back if it is a lone BEGIN in promise form: returns the reply it gets now, else undefined. */
  hold(client: C, args: readonly unknown[]): Promise<unknown> | undefined {
    if (!isPlainText(args) || !LONE_BEGIN.test(args[0]) || this.held.has(client) || this.failed.has(client))
      return undefined;
    this.held.set(client, args[0]);
    return Promise.resolve({ command: 'BEGIN', rowCount: null, rows: [], fields: [] });
  }

  /** Sends `args` on `client` with the BEGIN held for it, if there is one; else as it is. */
  send(client: C, query: SendQuery, args: unknown[]): unknown {
    if (this.failed.has(client)) return this.afterFailedBegin(client, query, args);
    const begin = this.held.get(client);
    if (begin === undefined) return query(...args);
    this.held.delete(client);
    const beginFailed = (error: unknown) => {
      this.failed.set(client, error);
      throw error;
    };
    if (isPlainText(args)) {
      const prefix = `${begin.replace(/;?\s*$/, '')};\n`;
      const replies = query(`${prefix}${args[0]}`, ...args.slice(1)) as Promise<unknown>;
      return replies.then(withoutBegin, (error: unknown) => beginFailed(shiftedBack(error, prefix.length)));
    }
    if (returnsPromise(args)) return (query(begin) as Promise<unknown>).then(() => query(...args), beginFailed);
    // A cursor or a callback is answered by what `query` returns now: it is queued right behind BEGIN.
    (query(begin) as Promise<unknown>).catch((error: unknown) => this.failed.set(client, error));
    return query(...args);
  }

  /**
   * Sends a held BEGIN on its own, queued ahead of whatever the client runs next: for a client that
   * is about to be sent statements without this class.
   */
  flush(client: C, query: SendQuery): void {
    const begin = this.held.get(client);
    if (begin === undefined) return;
    this.held.delete(client);
    (query(begin) as Promise<unknown>).catch(() => undefined);
  }

  /** The client went back to its pool: a BEGIN no statement followed is dropped, as if rolled back. */
  drop(client: C): void {
    this.held.delete(client);
    this.failed.delete(client);
  }

  /**
   * After a message that carried BEGIN failed: a ROLLBACK ends it; a COMMIT rolls back and fails.
   * Another statement is sent only if BEGIN took (PostgreSQL then refuses it itself, as in any
   * transaction a statement failed in); else it fails unsent with that message's error.
   */
  private afterFailedBegin(client: C, query: SendQuery, args: unknown[]): unknown {
    const error = this.failed.get(client);
    const text = typeof args[0] === 'string' ? args[0] : '';
    if (ROLLBACK.test(text) || COMMIT.test(text)) {
      this.failed.delete(client);
      if (ROLLBACK.test(text)) return query(...args);
      return (query('rollback') as Promise<unknown>).then(() => Promise.reject(error));
    }
    if (!returnsPromise(args)) return query(...args);
    // Whether BEGIN took: in a transaction a statement failed in, even `select 1` is refused.
    return (query('select 1') as Promise<unknown>).then(
      () => Promise.reject(error),
      () => {
        this.failed.delete(client);
        return query(...args);
      },
    );
  }
}

/** node-postgres answers a message of several statements with one reply each: BEGIN's is dropped. */
function withoutBegin(replies: unknown): unknown {
  if (!Array.isArray(replies)) return replies;
  return replies.length === 2 ? replies[1] : replies.slice(1);
}

/** PostgreSQL's error position counts from the message's start: made to count from the statement's. */
function shiftedBack(error: unknown, by: number): unknown {
  const failure = error as { position?: unknown } | null;
  const position = Number(failure?.position);
  if (failure && Number.isInteger(position) && position > by) failure.position = String(position - by);
  return error;
}
