import { OutboxMonitor } from 'nest-outbox';
import { BenchAggregate, handled, startBenchApp, ormOf } from '../bench.app.js';
import {
  WORKER_CONCURRENCY,
  emptyTables,
  now,
  obliterateQueue,
  quantile,
  signal,
  sleep,
  ticker,
  waitUntil,
  within,
  type Bench,
} from '../harness.js';

export interface LatencyResult {
  rate: number;
  seconds: number;
  events: number;
  /** Rate the writers actually committed at (shows the load was the one asked for). */
  achievedRate: number;
  /** Commit → handler start, ms. */
  p50: number;
  p95: number;
  p99: number;
  max: number;
  /** Flush (begin + inserts + commit) duration, ms, for context. */
  flushP50: number;
}

/**
 * c. A steady stream of single-event commits; for each, the time from the commit returning to the
 * handler starting. The payload carries `sentAt` (taken before the flush, since a row cannot hold
 * its own commit time); the commit time is taken when flush() resolves, in this same process, and
 * matched to the handler's start by aggregate id — so the figure excludes the flush itself.
 */
export async function latencyPhase(bench: Bench): Promise<LatencyResult> {
  await emptyTables(bench.databaseUrl);
  const queueName = `${bench.runId}-latency`;
  const app = await startBenchApp({
    databaseUrl: bench.databaseUrl,
    outbox: { redis: bench.redisUrl, prefix: queueName, worker: { concurrency: WORKER_CONCURRENCY } },
  });
  const { latencyRate: rate, latencySeconds: seconds } = bench.sizes;
  const total = rate * seconds;
  try {
    const orm = ormOf(app);
    const monitor = app.get(OutboxMonitor);
    const committedAt = new Map<string, number>();
    const flushMs: number[] = [];
    const startedAt = new Map<string, number>();
    const write = async (n: number) => {
      const em = orm.em.fork();
      const sentAt = now();
      const aggregate = BenchAggregate.create(n, 1, sentAt);
      em.persist(aggregate);
      await em.flush();
      const at = now();
      committedAt.set(aggregate.id, at);
      flushMs.push(at - sentAt);
    };

    // Warm-up (not recorded): connections opened, code paths compiled.
    const warm = signal();
    let warmed = 0;
    handled.listener = () => void (++warmed === 50 && warm.resolve());
    for (let i = 0; i < 50; i++) await write(i);
    await within(warm.promise, 30_000, 'the warm-up events');
    await waitUntil('the outbox to settle', () => monitor.isSettled(), 30_000, 20);
    committedAt.clear();
    flushMs.length = 0;

    const all = signal();
    handled.listener = (event, at) => {
      startedAt.set(event.aggregateId, at);
      if (startedAt.size === total) all.resolve();
    };
    bench.progress(`${rate} events/s for ${seconds} s (one event per transaction)`);
    const stop = ticker(5000, () =>
      bench.progress(`  committed ${committedAt.size}/${total}, handled ${startedAt.size}/${total}`),
    );
    const inflight = new Set<Promise<void>>();
    const errors: unknown[] = [];
    const started = now();
    let sent = 0;
    try {
      // Open loop: commits are started on schedule whether or not earlier ones have finished.
      while (sent < total) {
        const due = Math.min(total, Math.floor(((now() - started) / 1000) * rate) + 1);
        while (sent < due) {
          const p: Promise<void> = write(sent++)
            .catch((error: unknown) => void errors.push(error))
            .finally(() => inflight.delete(p));
          inflight.add(p);
        }
        await sleep(1);
      }
      await Promise.all(inflight);
      const lastCommit = Math.max(...committedAt.values());
      if (errors.length > 0) throw new Error(`${errors.length} latency writes failed; first: ${String(errors[0])}`);
      await within(all.promise, 120_000, `${total} handler runs`);
      const latencies = [...startedAt].map(([id, at]) => at - committedAt.get(id)!).sort((a, b) => a - b);
      return {
        rate,
        seconds,
        events: total,
        achievedRate: total / ((lastCommit - started) / 1000),
        p50: quantile(latencies, 0.5),
        p95: quantile(latencies, 0.95),
        p99: quantile(latencies, 0.99),
        max: latencies[latencies.length - 1],
        flushP50: quantile(
          [...flushMs].sort((a, b) => a - b),
          0.5,
        ),
      };
    } finally {
      stop();
    }
  } finally {
    handled.listener = () => undefined;
    await app.close();
    await obliterateQueue(bench.redisUrl, 'bench', queueName);
  }
}
