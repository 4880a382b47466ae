import type { MikroORM } from '@mikro-orm/core';
import type { EntityManager } from '@mikro-orm/postgresql';
import { settlement } from '../util/settlement.js';
import type { CommitWatch } from './commit-watch.js';
import { handlerTransaction } from './handler-transaction.js';

/** What a handler run in a shared transaction returns. */
export interface SharedOutcome {
  kind: 'handled' | 'duplicate';
}

/** A run that can be ended from outside (a shutdown out of time): its signal, and a promise that rejects then. */
export interface AbortScope {
  signal: AbortSignal;
  aborted: Promise<never>;
  end(): void;
}

/** How the shared transactions run their members, supplied by the handler runner. */
export interface SharedRunner<R> {
  /**
   * Runs `run` inside `em`'s transaction, its writes flushed when it returns; throws if it failed.
   * `committed` settles when the shared transaction commits or rolls back.
   */
  inShared(em: EntityManager, run: R, aborted: Promise<never>, committed: Promise<void>): Promise<SharedOutcome>;
  /** Runs `run` in a transaction of its own, as without sharing. */
  alone(run: R): Promise<SharedOutcome>;
  abortable(): AbortScope;
}

interface Waiting<R> {
  run: R;
  resolve(outcome: SharedOutcome): void;
  reject(error: unknown): void;
}

/**
 * Runs handler runs that become ready together (in the same turn of the event loop) in one
 * transaction, up to `size` of them, one after another: one BEGIN, one COMMIT and one MikroORM
 * transaction for them all instead of one each. Each keeps its own fork, message context and
 * inbox mark. Sharing must not change what a run does: when one fails, it and the runs rolled
 * back with it run again alone (a batchmate cannot fail a run, and none runs more than once
 * more), and those not run yet are batched again; when the transaction as a whole fails (BEGIN,
 * COMMIT, or left aborted by a run that caught a failed statement), each is run alone.
 */
export class SharedTransactions<R> {
  private waiting: Array<Waiting<R>> = [];
  private scheduled = false;

  constructor(
    private readonly orm: MikroORM,
    private readonly commits: CommitWatch,
    private readonly size: number,
    private readonly runner: SharedRunner<R>,
  ) {}

  run(run: R): Promise<SharedOutcome> {
    return new Promise((resolve, reject) => {
      this.waiting.push({ run, resolve, reject });
      this.schedule();
    });
  }

  /**
   * Fails the runs still waiting for a shared transaction (a shutdown out of time); the runs in
   * one are ended by the runner's aborters, as alone.
   */
  abortWaiting(reason: Error): void {
    for (const member of this.waiting.splice(0)) member.reject(reason);
  }

  private schedule(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    // After the current I/O phase, so the jobs whose replies arrived together share a transaction.
    setImmediate(() => {
      this.scheduled = false;
      while (this.waiting.length > 0) void this.runBatch(this.waiting.splice(0, this.size));
    });
  }

  private async runBatch(batch: Array<Waiting<R>>): Promise<void> {
    if (batch.length === 1) return settle(batch[0], () => this.runner.alone(batch[0].run));
    const scope = this.runner.abortable();
    const commit = settlement();
    let failedAt = -1;
    try {
      const outcomes = await this.commits.run((check) =>
        handlerTransaction(this.orm, scope.signal, async (em) => {
          const done: SharedOutcome[] = [];
          for (const [index, member] of batch.entries()) {
            failedAt = index;
            done.push(await this.runner.inShared(em, member.run, scope.aborted, commit.promise));
          }
          failedAt = -1;
          // Else a member that caught a failed statement would make every member look handled.
          await check.beforeCommit(em, () => 'A run caught a failed statement.');
          return done;
        }),
      );
      commit.resolve();
      batch.forEach((member, index) => member.resolve(outcomes[index]));
    } catch (error) {
      commit.reject(error);
      if (scope.signal.aborted) {
        for (const member of batch) member.reject(scope.signal.reason ?? error);
        return;
      }
      // The runs that ran (the failing one, and those before it, rolled back with it) run again
      // alone, so each runs at most once more; those that had not run wait for the next shared
      // transaction, ahead of newcomers. A transaction that failed as a whole (BEGIN, COMMIT, left
      // aborted) ran them all.
      const ran = failedAt >= 0 ? batch.slice(0, failedAt + 1) : batch;
      const notRun = failedAt >= 0 ? batch.slice(failedAt + 1) : [];
      if (notRun.length > 0) {
        this.waiting.unshift(...notRun);
        this.schedule();
      }
      await Promise.all(ran.map((member) => settle(member, () => this.runner.alone(member.run))));
    } finally {
      scope.end();
    }
  }
}

async function settle<R>(member: Waiting<R>, run: () => Promise<SharedOutcome>): Promise<void> {
  try {
    member.resolve(await run());
  } catch (error) {
    member.reject(error);
  }
}
