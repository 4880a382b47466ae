/** A `pg` client's own `query`, bound to the client. */
export type SendQuery = (...args: unknown[]) => unknown;

/** One statement that opens a transaction, as Kysely sends it for MikroORM. */
const LONE_BEGIN = /^\s*(begin|start transaction)\b[^;]*;?\s*$/i;

/**
 * A transaction's BEGIN, sent in one round trip with the statement after it. The BEGIN of a
 * watched transaction is held back and answered at once; the transaction's first statement then
 * carries it, in the same simple-protocol message: `begin; insert …`. MikroORM prints the values
 * into its statements, so its statements are plain text and can share a message; a statement with
 * bind parameters cannot, and follows the BEGIN as before. PostgreSQL runs a message's statements
 * in order and stops at the first that fails, so the first statement never runs outside the
 * transaction; nor does one sent after BEGIN, which waits for BEGIN's reply.
 */
export class HeldBegins<C extends object> {
  private readonly held = new WeakMap<C, string>();

  /** Holds `args` back if it is a lone BEGIN in promise form: returns the reply it gets now, else undefined. */
  hold(client: C, args: readonly unknown[]): Promise<unknown> | undefined {
    if (!isPlainText(args) || !LONE_BEGIN.test(args[0]) || this.held.has(client)) return undefined;
    this.held.set(client, args[0]);
    return Promise.resolve({ command: 'BEGIN', rowCount: null, rows: [], fields: [] });
  }

  /** Whether a BEGIN is held for `client`: its next statement must go through `send`. */
  holds(client: C): boolean {
    return this.held.has(client);
  }

  /** Sends `args` on `client` with the BEGIN held for it, if there is one. */
  send(client: C, query: SendQuery, args: unknown[]): unknown {
    const begin = this.held.get(client);
    if (begin === undefined) return query(...args);
    this.held.delete(client);
    if (isPlainText(args)) {
      const replies = query(`${begin.replace(/;?\s*$/, '')};\n${args[0]}`, ...args.slice(1)) as Promise<unknown>;
      return replies.then(withoutBegin);
    }
    if (returnsPromise(args)) return (query(begin) as Promise<unknown>).then(() => query(...args));
    // A cursor or a callback is answered by what `query` returns now: it is queued right behind BEGIN.
    (query(begin) as Promise<unknown>).catch(() => undefined);
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
  }
}

/** A statement without bind parameters, answered by a promise: what can share BEGIN's message. */
function isPlainText(args: readonly unknown[]): args is [string] | [string, []] {
  if (typeof args[0] !== 'string') return false;
  return args.length === 1 || (args.length === 2 && Array.isArray(args[1]) && args[1].length === 0);
}

function returnsPromise(args: readonly unknown[]): boolean {
  const first = args[0] as { submit?: unknown } | null;
  return typeof args[args.length - 1] !== 'function' && typeof first?.submit !== 'function';
}

/** node-postgres answers a message of several statements with one reply each: BEGIN's is dropped. */
function withoutBegin(replies: unknown): unknown {
  if (!Array.isArray(replies)) return replies;
  return replies.length === 2 ? replies[1] : replies.slice(1);
}
