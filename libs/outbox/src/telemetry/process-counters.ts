import { Injectable } from '@nestjs/common';

/** What this process's relay did since it started, and its sending on commit (`relay.dispatchOnCommit`). */
export interface RelayCounters {
  /**
   * Rows claimed (a row claimed again after a failure counts again), and rows sent on commit once
   * routed (not those handed back unsent).
   */
  claimed: number;
  /** Rows handed to BullMQ and marked. */
  dispatched: number;
  /** Batches whose enqueue failed and were released. */
  failedBatches: number;
  /** Drains that failed (Redis or PostgreSQL unreachable, …) and were retried after a backoff. */
  failedDrains: number;
  /**
   * When the relay last showed it works (ms since epoch; 0 before that): a drain that ended without
   * an error — also one that found nothing due — or a batch marked in the middle of a long drain.
   */
  lastActiveAt: number;
}

/** What this process's worker did since it started. */
export interface WorkerCounters {
  /** Jobs completed. */
  handled: number;
  /** Job attempts that failed and will be retried. */
  retried: number;
  /** Jobs that became dead letters here. */
  deadLettered: number;
}

/**
 * Counters of this process's relay (with its sending on commit) and worker, written by the stages, read through
 * `OutboxMonitor.processCounters()`. Other processes keep their own.
 */
@Injectable()
export class ProcessCounters {
  readonly relay: RelayCounters = { claimed: 0, dispatched: 0, failedBatches: 0, failedDrains: 0, lastActiveAt: 0 };
  readonly worker: WorkerCounters = { handled: 0, retried: 0, deadLettered: 0 };
}
