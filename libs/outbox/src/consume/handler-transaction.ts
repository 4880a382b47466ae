import { RequestContext, type MikroORM } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';

/**
 * Runs `work` in a transaction of its own, on a fork that starts empty and is dropped after it.
 * Begun on the global EntityManager, MikroORM forks once and, with the global context disallowed
 * (its default), merges nothing back. Where the application allows the global context, MikroORM
 * would merge every entity the run loaded into the global identity map, which would grow with
 * every message: there the run gets a request context of its own to merge into, as a request does.
 * `signal` ends it: the transaction rolls back, and a query in flight is cancelled.
 */
export function handlerTransaction<T>(
  orm: MikroORM,
  signal: AbortSignal,
  work: (em: EntityManager) => Promise<T>,
): Promise<T> {
  const transaction = () =>
    orm.em.transactional((em) => work(em as EntityManager), {
      clear: true,
      signal,
      inflightQueryAbortStrategy: 'cancel query',
    });
  if (orm.config.get('allowGlobalContext')) return RequestContext.create(orm.em, transaction);
  return transaction();
}
