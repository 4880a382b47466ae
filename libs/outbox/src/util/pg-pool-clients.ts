import type { MikroORM } from '@mikro-orm/core';
import { errorText } from './error-text.js';

/** The parts of a `pg` client the hooks use. */
export interface PgClient {
  query(...args: unknown[]): unknown;
  once(event: 'end', listener: () => void): unknown;
}

/** The parts of a `pg` pool the hooks use. */
export interface PgPool {
  on(event: 'connect', listener: (client: PgClient) => void): unknown;
  on(event: 'release', listener: (error: unknown, client: PgClient) => void): unknown;
  off(event: 'connect', listener: (client: PgClient) => void): unknown;
  off(event: 'release', listener: (error: unknown, client: PgClient) => void): unknown;
  /** pg-pool's clients so far: private, so read only if there (else those clients are not hooked). */
  _clients?: PgClient[];
}

/** A `pg` client's own `query`, bound to the client. */
export type SendQuery = (...args: unknown[]) => unknown;

/** What a hook does to the statements of each client of a pool. */
export interface ClientHook {
  /** The client's `query` from now on; `send` is the one it had. */
  wrap(client: PgClient, send: SendQuery): (...args: unknown[]) => unknown;
  /** The client went back to its pool. */
  released?(client: PgClient): void;
  /** The client gets its own `query` back: whatever the hook holds for it goes out through `send`. */
  unwrapping?(client: PgClient, send: SendQuery): void;
}

/**
 * The ORM's `pg` pool, when its driver hands one out (not with a Kysely instance the application
 * passed in `driverOptions`, nor with a driver other than PostgreSQL's). Throws what the driver threw.
 */
export async function pgPoolOf(orm: MikroORM): Promise<PgPool | undefined> {
  const connection = orm.em.getConnection() as { getNativeClient?: () => Promise<unknown> };
  if (typeof connection.getNativeClient !== 'function') return undefined;
  const pool = (await connection.getNativeClient()) as PgPool | undefined;
  return typeof pool?.on === 'function' && typeof pool.off === 'function' ? pool : undefined;
}

/**
 * Puts `hook` on the clients of the ORM's `pg` pool. Undefined without one; when the driver fails
 * to hand it out, `unhooked` hears why.
 */
export async function hookPoolClients(
  orm: MikroORM,
  hook: ClientHook,
  unhooked: (why: string) => void,
): Promise<PoolClientHook | undefined> {
  try {
    const pool = await pgPoolOf(orm);
    return pool && new PoolClientHook(pool, hook);
  } catch (error) {
    unhooked(errorText(error));
    return undefined;
  }
}

/** A hook on every client of a pool: those connected when it is put on, and those that connect later. */
export class PoolClientHook {
  /** Hooked clients and their own `query` before (undefined: the prototype's), to unwrap them. */
  private readonly wrapped = new Map<
    PgClient,
    { original: PgClient['query'] | undefined; wrapper: unknown; send: SendQuery }
  >();
  private readonly onConnect = (client: PgClient) => this.wrap(client);
  private readonly onRelease = (_error: unknown, client: PgClient) => this.hook.released?.(client);

  constructor(
    private readonly pool: PgPool,
    private readonly hook: ClientHook,
  ) {
    pool.on('connect', this.onConnect);
    pool.on('release', this.onRelease);
    for (const client of Array.isArray(pool._clients) ? pool._clients : []) this.wrap(client);
  }

  /** New clients are left alone; hooked ones get their own `query` back. */
  remove(): void {
    this.pool.off('connect', this.onConnect);
    this.pool.off('release', this.onRelease);
    for (const [client, { original, wrapper, send }] of this.wrapped) {
      if (client.query !== wrapper) continue; // wrapped again since, by someone else: leave it
      this.hook.unwrapping?.(client, send);
      if (original) client.query = original;
      else delete (client as Partial<PgClient>).query;
    }
    this.wrapped.clear();
  }

  private wrap(client: PgClient): void {
    if (this.wrapped.has(client)) return;
    const original = Object.prototype.hasOwnProperty.call(client, 'query') ? client.query : undefined;
    const query = client.query;
    const send: SendQuery = (...args) => query.apply(client, args);
    const wrapper = this.hook.wrap(client, send);
    client.query = wrapper;
    this.wrapped.set(client, { original, wrapper, send });
    client.once('end', () => this.wrapped.delete(client));
  }
}
