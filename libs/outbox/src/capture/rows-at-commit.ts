import type { MikroORM } from '@mikro-orm/core';
import { Logger } from '@nestjs/common';
import { AT_COMMIT } from '../store/outbox-row.insert.js';
import { OutboxError } from '../outbox.errors.js';
import { flushRolledBackAfterRows } from '../outbox.messages.js';
import { hookPoolClients, type PgClient, type PoolClientHook, type SendQuery } from '../util/pg-pool-clients.js';
import { COMMIT, ROLLBACK, isPlainText, isThenable } from '../util/pg-statement.js';

/**
 * A flush's outbox rows, sent with its COMMIT: `insert …; commit` in one simple-protocol message,
 * one round trip less per flush that writes rows. The rows' INSERT (plain text, marked
 * `AT_COMMIT`) is held back on its `pg` client and answered at once; the client's next statement
 * decides what becomes of it:
 * - COMMIT: both go in one message. PostgreSQL stops a message at its first error, so a failed
 *   INSERT leaves COMMIT unrun, the transaction aborted, and MikroORM's commit fails with the
 *   INSERT's error (it then rolls back, as for any failed commit).
 * - ROLLBACK: the rows are dropped unsent; the transaction would have undone them.
 * - anything else (another subscriber's statement before the commit): the rows go first, alone,
 *   with the statement queued behind them. If they fail, that statement fails with their error,
 *   and so does the COMMIT (PostgreSQL would answer it with a silent ROLLBACK).
 */
export class RowsAtCommit {
  private readonly logger = new Logger('Outbox');
  private hook: PoolClientHook | undefined;
  private readonly held = new WeakMap<PgClient, string>();
  /** Clients whose rows went ahead of another statement; their COMMIT must not succeed without them. */
  private readonly ahead = new WeakMap<PgClient, RowsAhead>();

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
    this.hook ??= await hookPoolClients(
      this.orm,
      { wrap: (client, send) => this.wrap(client, send), released: (client) => this.forget(client) },
      (why) => this.logger.debug(`Outbox rows are sent before COMMIT, not with it (${why}).`),
    );
  }

  private wrap(client: PgClient, send: SendQuery): (...args: unknown[]) => unknown {
    return (...args: unknown[]): unknown => {
      const text = typeof args[0] === 'string' ? args[0] : '';
      const ahead = this.ahead.get(client);
      if (ahead && (COMMIT.test(text) || ROLLBACK.test(text))) return this.endAfterRowsAhead(client, ahead, send, args);
      const held = this.held.get(client);
      if (held === undefined) {
        // Not a COMMIT carrying rows already (another hook's, on the same pool).
        if (!text.startsWith(AT_COMMIT) || !isPlainText(args) || CARRIES_COMMIT.test(text)) return send(...args);
        this.held.set(client, text);
        // Nobody reads the count: the rows' INSERT is the outbox's own, which only awaits it.
        return Promise.resolve({ command: 'INSERT', rowCount: 0, rows: [], fields: [] });
      }
      this.held.delete(client);
      if (COMMIT.test(text) && isPlainText(args)) {
        return (send(`${held};\n${text}`) as Promise<unknown>).then(commitReply);
      }
      if (ROLLBACK.test(text)) return send(...args);
      return this.sendAhead(client, held, send, args);
    };
  }

  /**
   * Another statement before COMMIT: the rows go first, alone, and the statement is queued right
   * behind them, so it stays in the transaction even if nobody awaits it before COMMIT. If the
   * rows fail, PostgreSQL refuses the statement, which then fails with the rows' error.
   */
  private sendAhead(client: PgClient, rows: string, send: SendQuery, args: unknown[]): unknown {
    const ahead: RowsAhead = {};
    this.ahead.set(client, ahead);
    (send(rows) as Promise<unknown>).catch((error: unknown) => {
      ahead.error = error;
    });
    const result = send(...args);
    if (!isThenable(result)) return result;
    return result.catch((error: unknown) => {
      throw ahead.error ?? error;
    });
  }

  /**
   * PostgreSQL answers the COMMIT of a transaction a statement failed in with a silent ROLLBACK:
   * after rows that went ahead, that reply fails the COMMIT, with the rows' error if they failed.
   */
  private endAfterRowsAhead(client: PgClient, ahead: RowsAhead, send: SendQuery, args: unknown[]): unknown {
    this.ahead.delete(client);
    const ended = send(...args);
    if (!COMMIT.test(args[0] as string) || !isThenable(ended)) return ended;
    return ended.then((reply) => {
      if ((reply as { command?: string } | undefined)?.command !== 'ROLLBACK') return reply;
      throw ahead.error ?? new OutboxError(flushRolledBackAfterRows());
    });
  }

  private forget(client: PgClient): void {
    this.held.delete(client);
    this.ahead.delete(client);
  }
}

/** Rows sent ahead of another statement, and their error once they failed. */
interface RowsAhead {
  error?: unknown;
}

const CARRIES_COMMIT = /;\s*commit\s*;?\s*$/i;

/** node-postgres answers a message of two statements with two replies: COMMIT's is the caller's. */
function commitReply(replies: unknown): unknown {
  return Array.isArray(replies) ? replies[replies.length - 1] : replies;
}
