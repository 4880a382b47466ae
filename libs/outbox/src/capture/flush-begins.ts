import type { MikroORM, Transaction } from '@mikro-orm/core';
import { Logger } from '@nestjs/common';
import { CompiledQuery } from 'kysely';
import { HeldBegins } from '../util/held-begin.js';
import { hookPoolClients, type PgClient, type PoolClientHook, type SendQuery } from '../util/pg-pool-clients.js';

/** Run in a flush's transaction right after its BEGIN, never sent: it names the client the flush got. */
const CLAIM = '/* nest-outbox: flush with rows */';
const NOTHING = { command: 'SELECT', rowCount: 0, rows: [], fields: [] };

/**
 * The BEGIN of a flush that writes outbox rows, sent with the flush's first statement:
 * `begin; insert …` in one message, one round trip less (`HeldBegins` says why that is safe).
 *
 * Which BEGIN is the flush's cannot be told from the statement. Just before the flush opens its
 * transaction, `expect()` lets the next lone BEGIN on the pool be held; right after, the flush
 * runs `CLAIM` in its transaction, which is never sent. If its own BEGIN went out unheld (another
 * transaction began in between, on another client, and its BEGIN was held instead), the claim
 * gives the place back, so places do not pile up. That other transaction's BEGIN then travels
 * with its own first statement, as safely; the application's transactions that begin alone keep
 * their BEGIN as it was.
 */
export class FlushBegins {
  private readonly logger = new Logger('Outbox');
  private hook: PoolClientHook | undefined;
  private readonly begins = new HeldBegins<PgClient>();
  /** Flushes with rows about to begin, whose BEGIN is not held yet: as many lone BEGINs will be. */
  private expected = 0;
  /** Clients whose BEGIN this hook held, until they go back to the pool: a claim there keeps its place. */
  private readonly heldHere = new WeakSet<PgClient>();

  constructor(private readonly orm: MikroORM) {}

  /** Hooks the clients of the ORM's `pg` pool for as long as the pool lives. */
  async start(): Promise<void> {
    this.hook ??= await hookPoolClients(
      this.orm,
      {
        wrap: (client, send) => this.wrap(client, send),
        released: (client) => {
          this.begins.drop(client);
          this.heldHere.delete(client);
        },
      },
      (why) => this.logger.debug(`A flush's BEGIN is sent on its own (${why}).`),
    );
  }

  /** A flush with rows is about to open its transaction; returns whether it should `claim` it then. */
  expect(): boolean {
    if (!this.hook) return false;
    this.expected++;
    return true;
  }

  /** In the flush's transaction, right after BEGIN (after `expect()`). */
  async claim(transaction: Transaction): Promise<void> {
    const executor = transaction as { executeQuery(query: CompiledQuery): Promise<unknown> };
    await executor.executeQuery(CompiledQuery.raw(CLAIM));
  }

  private wrap(client: PgClient, send: SendQuery): (...args: unknown[]) => unknown {
    return (...args: unknown[]): unknown => {
      const text = args[0];
      if (text === CLAIM) {
        // Its BEGIN went out unheld (another took the place): the place is not kept for a later one.
        if (!this.heldHere.has(client) && this.expected > 0) this.expected--;
        return Promise.resolve(NOTHING);
      }
      if (typeof text === 'string' && text.endsWith(CLAIM)) {
        // A hook outside this one held the BEGIN and sent it with the claim (a flush inside a
        // watched handler run): that BEGIN was never this hook's to hold, so its place is given back.
        if (this.expected > 0) this.expected--;
        return send(...args);
      }
      if (this.expected > 0) {
        const held = this.begins.hold(client, args);
        if (held) {
          this.expected--;
          this.heldHere.add(client);
          return held;
        }
      }
      return this.begins.send(client, send, args);
    };
  }
}
