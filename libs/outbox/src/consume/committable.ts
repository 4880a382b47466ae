import type { EntityManager } from '@mikro-orm/postgresql';
import { OutboxError } from '../outbox.errors.js';
import { errorChain } from '../util/error-chain.js';

/** PostgreSQL's "current transaction is aborted" (25P02): a statement of it failed earlier, and was caught. */
function isAbortedTransaction(error: unknown): boolean {
  for (const cause of errorChain(error)) if ((cause as { code?: unknown }).code === '25P02') return true;
  return false;
}

/** `error` said as `why` (an OutboxError) when it is the aborted transaction's; else as it is. */
export function explainAborted(error: unknown, why: () => string): unknown {
  return isAbortedTransaction(error) ? new OutboxError(why(), { cause: error }) : error;
}

/**
 * PostgreSQL answers the COMMIT of a transaction in which a statement failed with a silent
 * ROLLBACK: a handler that caught such a failure and returned would look handled while nothing it
 * wrote, nor its inbox mark, committed. One statement before COMMIT says whether it can commit;
 * if not, this throws an OutboxError saying `why`.
 */
export async function ensureCommittable(em: EntityManager, why: () => string): Promise<void> {
  try {
    await em.execute('select 1');
  } catch (error) {
    throw explainAborted(error, why);
  }
}
