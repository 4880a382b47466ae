import type { EntityManager, MikroORM, UnitOfWork } from '@mikro-orm/core';
import { OutboxSetupError } from '../outbox.errors.js';

/**
 * The unit of work a message published now belongs to: the transaction's (inside
 * `em.transactional`), else the request context's. Outside both there is nothing to write with,
 * and `outside()` says so: the message is refused rather than lost.
 */
export function currentUnit(orm: MikroORM, outside: () => string): UnitOfWork {
  let context: EntityManager;
  try {
    context = orm.em.getContext();
  } catch (error) {
    throw new OutboxSetupError(outside(), { cause: error });
  }
  return context.getUnitOfWork(false);
}
