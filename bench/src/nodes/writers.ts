import { now, sleep } from '../harness.js';
import { distribution } from '../measure/stats.js';
import type { Load, WriteReport } from './protocol.js';

/** Writes one aggregate with one event in its own transaction; says which and when its flush started and returned. */
export type WriteOne = (n: number) => Promise<{ id: string; startedAt: number; committedAt: number }>;

/**
 * Drives a writer node's load. Closed loop: `writers` loops, each starting its next transaction
 * when the last one committed (the most a process can write). Open loop: transaction i starts at
 * t0 + i / rate whether or not earlier ones finished, as independent requests arrive — a slow
 * commit does not thin out the load after it. The schedule sleeps until the next start time
 * rather than polling, so the writer's own wake-ups stay at one per event.
 */
export async function runLoad(load: Load, record: boolean, writeOne: WriteOne): Promise<WriteReport> {
  const commits: Array<[string, number]> = [];
  const flushMs: number[] = [];
  const errors: unknown[] = [];
  let firstCommitAt = Infinity;
  let lastCommitAt = 0;
  const write = async (n: number) => {
    try {
      const { id, startedAt, committedAt } = await writeOne(n);
      if (record) commits.push([id, committedAt]);
      flushMs.push(committedAt - startedAt);
      firstCommitAt = Math.min(firstCommitAt, committedAt);
      lastCommitAt = Math.max(lastCommitAt, committedAt);
    } catch (error) {
      errors.push(error);
    }
  };

  let startLag: number[] | undefined;
  if (load.shape === 'closed') {
    let next = 0;
    const loop = async () => {
      while (next < load.events) await write(next++);
    };
    await Promise.all(Array.from({ length: load.writers }, loop));
  } else {
    startLag = [];
    const interval = 1000 / load.rate;
    const t0 = now();
    const inflight = new Set<Promise<void>>();
    for (let sent = 0; sent < load.events;) {
      const t = now();
      while (sent < load.events && t0 + sent * interval <= t) {
        startLag.push(t - (t0 + sent * interval));
        const p: Promise<void> = write(sent++).finally(() => inflight.delete(p));
        inflight.add(p);
      }
      if (sent < load.events) await sleep(Math.max(0, t0 + sent * interval - now()));
    }
    await Promise.all(inflight);
  }
  if (errors.length > 0)
    throw new Error(`${errors.length} of ${load.events} writes failed; first: ${String(errors[0])}`);
  return {
    events: load.events,
    firstCommitAt,
    lastCommitAt,
    ...(record ? { commits } : {}),
    flush: distribution(flushMs),
    ...(startLag ? { startLag: distribution(startLag) } : {}),
  };
}
