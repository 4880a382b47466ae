import type { OutboxModuleOptions } from 'nest-outbox';
import { WORKER_CONCURRENCY } from './harness.js';

/**
 * The one place the bench builds OutboxModule options. Every process and phase gets its options
 * here, so a change of the library's options (say, `queueName` becoming `service`) is made once.
 */

/** What one process of the bench runs besides capture. */
export interface OutboxRole {
  relay: boolean;
  worker: boolean;
  /** `worker.handlersPerTransaction`; the library's default (1) unless a phase measures sharing. */
  handlersPerTransaction?: number;
  /** `relay.dispatchOnCommit`; the library's default (on) unless a phase measures the relay's own path. */
  dispatchOnCommit?: boolean;
}

/** API process (and flush overhead's "on" side): capture, and with the default, sending on commit. */
export const CAPTURE_ONLY: OutboxRole = { relay: false, worker: false };
/** An API process that leaves every row to a relay (`relay.dispatchOnCommit: false`): the relay's own path. */
export const CAPTURE_FOR_RELAY: OutboxRole = { ...CAPTURE_ONLY, dispatchOnCommit: false };
/** Outbox process, and the single-process variant (which also writes). */
export const RELAY_AND_WORKER: OutboxRole = { relay: true, worker: true };
/** Relay-only drain; the relay process of the split deployment. */
export const RELAY_ONLY: OutboxRole = { relay: true, worker: false };
/** The worker process of the split deployment. */
export const WORKER_ONLY: OutboxRole = { relay: false, worker: true };
/** Runs per shared transaction in the phases that measure `worker.handlersPerTransaction`. */
export const SHARED_RUNS = 16;

/** The consuming service the bench's outbox processes are (its queue is named after it), unless a phase names another. */
export const BENCH_SERVICE = 'bench';

export interface Where {
  redisUrl: string;
  /** The run's BullMQ key prefix (see Bench.prefix). */
  prefix: string;
}

/**
 * `service`: which service this process is (the fan-out phase runs several); `ordered`: its
 * handlers keep order per key.
 */
export function benchOutboxOptions(
  where: Where,
  role: OutboxRole,
  service = BENCH_SERVICE,
  ordered = false,
): OutboxModuleOptions {
  return {
    redis: where.redisUrl,
    prefix: where.prefix,
    service,
    relay: {
      enabled: role.relay,
      ...(role.dispatchOnCommit === undefined ? {} : { dispatchOnCommit: role.dispatchOnCommit }),
    },
    worker: {
      enabled: role.worker,
      concurrency: WORKER_CONCURRENCY,
      ...(ordered ? { ordered } : {}),
      ...(role.handlersPerTransaction ? { handlersPerTransaction: role.handlersPerTransaction } : {}),
    },
  };
}

/** The BullMQ queues the library keeps the bench service's jobs in (checked after the relay drain). */
export function benchQueueNames(): string[] {
  return [BENCH_SERVICE];
}
