import type { ResolvedOutboxOptions } from './outbox-options.interface.js';

/** Longest time from a job's first attempt to its last retry, from BullMQ's backoff rules (jitter only shortens it). */
export function retryWindowMs(worker: Pick<ResolvedOutboxOptions['worker'], 'attempts' | 'backoff'>): number {
  let total = 0;
  for (let retry = 1; retry < worker.attempts; retry++) {
    total += worker.backoff.type === 'fixed' ? worker.backoff.delayMs : worker.backoff.delayMs * 2 ** (retry - 1);
  }
  return total;
}
