import type { FromNode, HandledReport } from './protocol.js';

/** How often a node tells the phase how many messages it handled: often enough to notice the end, rarely enough to cost nothing. */
const PROGRESS_MS = 100;

/**
 * What a consuming node handled: a count of committed handler transactions and the time of the
 * last, pushed to the phase at most every PROGRESS_MS (a timer armed only by a commit, so an idle
 * node is never woken by it); handler start times are kept in memory for latency runs only.
 */
export class HandledLog {
  private count = 0;
  private lastAt = 0;
  private starts: Array<[string, number]> | undefined;
  private timer: NodeJS.Timeout | undefined;

  track(recordStarts: boolean): void {
    this.count = 0;
    this.lastAt = 0;
    this.starts = recordStarts ? [] : undefined;
  }

  started(aggregateId: string, at: number): void {
    this.starts?.push([aggregateId, at]);
  }

  committed(at: number): void {
    this.count++;
    this.lastAt = at;
    this.timer ??= setTimeout(() => {
      this.timer = undefined;
      send({ type: 'progress', count: this.count, lastAt: this.lastAt });
    }, PROGRESS_MS);
  }

  report(withStarts: boolean): HandledReport {
    return { count: this.count, lastAt: this.lastAt, ...(withStarts && this.starts ? { starts: this.starts } : {}) };
  }

  stop(): void {
    clearTimeout(this.timer);
  }
}

export const handledLog = new HandledLog();

export function send(message: FromNode): void {
  if (process.connected) process.send!(message);
}
