import type { MikroORM } from '@mikro-orm/core';
import { Logger } from '@nestjs/common';
import { AT_COMMIT } from '../store/outbox-row.insert.js';
import { errorText } from '../util/error-text.js';
import { PoolClientHook, pgPoolOf, type PgClient, type SendQuery } from '../util/pg-pool-clients.js';
import { COMMIT, ROLLBACK, isPlainText, returnsPromise } from '../util/pg-statement.js';

/**
 * A flush's outbox rows, sent with its COMMIT: `insert …; commit` in one simple-protocol message,
 * one round trip less per flush that writes rows. The rows' INSERT (plain text, marked
 * `AT_COMMIT`) is held back on its `pg` client and answered at once; the client's next statement
 * decides what becomes of it:
 * - COMMIT: both go in one message. PostgreSQL stops a message at its first error, so a failed
 *   INSERT leaves COMMIT unrun, the transaction aborted, and MikroORM's commit fails with the
 *   INSERT's error (it then rolls back, as for any failed commit).
 * - ROLLBACK: the rows are dropped unsent; the transaction would have undone them.
 * - anything else (another subscriber's statement before the commit): the rows go first, alone.
 *   If they fail, that statement fails with their error, and so does the COMMIT.
 */
export class RowsAtCommit {
  private readonly logger = new Logger('Outbox');
  private hook: PoolClientHook | undefined;
  private readonly held = new WeakMap<PgClient, string>();
  /** Clients whose rows, sent ahead of a statement that could not carry them, failed: their COMMIT must fail too. */
  private readonly failed = new WeakMap<PgClient, unknown>();

  constructor(private readonly orm: MikroORM) {}

  /** Whether rows can wait for COMMIT: the ORM's `pg` pool is hooked. */
  get active(): boolean {
    return this.hook !== undefined;
  }

  /**
   * Hooks the clients of the ORM's `pg` pool for as long as the pool lives: a hook taken off while
   * a flush commits could lose the answer to its rows. It holds only statements marked `AT_COMMIT`.
   */
  async start(): Promise<void> {
    if (this.hook) return;
    try {
      const pool = await pgPoolOf(this.orm);
      if (!pool) return;
      this.hook = new PoolClientHook(pool, {
        wrap: (client, send) => this.wrap(client, send),
        released: (client) => this.forget(client),
      });
    } catch (error) {
      this.logger.debug(`Outbox rows are sent before COMMIT, not with it (${errorText(error)}).`);
    }
  }

  private wrap(client: PgClient, send: SendQuery): (...args: unknown[]) => unknown {
    return (...args: unknown[]): unknown => {
      const text = typeof args[0] === 'string' ? args[0] : '';
      if (this.failed.has(client)) return this.afterFailedRows(client, send, args, text);
      const held = this.held.get(client);
      if (held === undefined) {
        if (!text.startsWith(AT_COMMIT) || !isPlainText(args)) return send(...args);
        this.held.set(client, text);
        // Nobody reads the count: the rows' INSERT is the outbox's own, which only awaits it.
        return Promise.resolve({ command: 'INSERT', rowCount: 0, rows: [], fields: [] });
      }
      this.held.delete(client);
      if (COMMIT.test(text) && isPlainText(args)) {
        return (send(`${held};\n${text}`) as Promise<unknown>).then(commitReply);
      }
      if (ROLLBACK.test(text)) return send(...args);
      const ahead = (send(held) as Promise<unknown>).catch((error: unknown) => {
        this.failed.set(client, error);
        throw error;
      });
      if (returnsPromise(args)) return ahead.then(() => send(...args));
      // A cursor or a callback is answered by what `query` returns now: queued right behind the rows.
      ahead.catch(() => undefined);
      return send(...args);
    };
  }

  /**
   * The rows went ahead of another statement and failed: PostgreSQL would answer COMMIT with a
   * silent ROLLBACK, so COMMIT rolls back and fails with their error. Other statements go on to
   * PostgreSQL, which refuses them in the aborted transaction.
   */
  private afterFailedRows(client: PgClient, send: SendQuery, args: unknown[], text: string): unknown {
    if (!COMMIT.test(text) && !ROLLBACK.test(text)) return send(...args);
    const error = this.failed.get(client);
    this.failed.delete(client);
    if (ROLLBACK.test(text)) return send(...args);
    return (send('rollback') as Promise<unknown>).then(() => Promise.reject(error));
  }

  private forget(client: PgClient): void {
    this.held.delete(client);
    this.failed.delete(client);
  }
}

/** node-postgres answers a message of two statements with two replies: COMMIT's is the caller's. */
function commitReply(replies: unknown): unknown {
  return Array.isArray(replies) ? replies[replies.length - 1] : replies;
}
