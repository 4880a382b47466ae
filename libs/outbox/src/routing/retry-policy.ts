import type { JobsOptions } from 'bullmq';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';

/**
 * How a consuming service retries a failing message: its own `worker.attempts` and
 * `worker.backoff`. Jobs carry their retry rules from the moment they are added, and they are
 * added by the relays of whichever service wrote the message, so each consumer publishes its
 * policy with its subscription and relays stamp it on the jobs they add to its queue.
 */
export interface RetryPolicy {
  attempts: number;
  backoff: { type: 'exponential' | 'fixed'; delayMs: number; jitter: number };
}

/** The policy this process's options give its own service. */
export function retryPolicyOf(options: Pick<ResolvedOutboxOptions, 'worker'>): RetryPolicy {
  const { attempts, backoff } = options.worker;
  return { attempts, backoff: { ...backoff } };
}

/** BullMQ options of a job added to a consuming service's queue. */
export function jobOptionsOf(policy: RetryPolicy, keepCompletedSeconds: number): JobsOptions {
  return {
    attempts: policy.attempts,
    backoff: { type: policy.backoff.type, delay: policy.backoff.delayMs, jitter: policy.backoff.jitter },
    // Kept at least as long as the lease, so a batch re-dispatched after a crash is recognised.
    removeOnComplete: { age: keepCompletedSeconds },
    // Failed jobs are the dead letters: kept until someone retries or discards them.
    removeOnFail: false,
  };
}
