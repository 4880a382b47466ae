import { MikroORM } from '@mikro-orm/postgresql';
import { OutboxMonitor } from 'nest-outbox';
import { BenchAggregate, handled, startBenchApp, ormOf } from '../bench.app.js';
import { cpuSince, readCpu, type CpuSplit } from '../cpu.js';
import {
  WORKER_CONCURRENCY,
  emptyTables,
  now,
  obliterateQueue,
  signal,
  ticker,
  waitUntil,
  within,
  type Bench,
} from '../harness.js';
import type { BaselineResult } from './baseline.js';

export interface ThroughputMode {
  eventsPerAggregate: number;
  events: number;
  writers: number;
  /** First commit → last handler transaction committed. */
  seconds: number;
  eventsPerSecond: number;
  /** How fast the writers committed events (while relay and worker shared the process). */
  committedPerSecond: number;
  /** eventsPerSecond / baseline end-to-end jobs per second. */
  ratioToBaseline: number | null;
  /** Relay round trips (claim + addBulk + mark) it took, from the distinct dispatched_at stamps. */
  relayBatches: number;
  /** Where the CPU went over the measured window. */
  cpu: CpuSplit;
}

export interface ThroughputResult {
  handler: string;
  concurrency: number;
  modes: ThroughputMode[];
}

export const HANDLER_NOTE = 'handler writes nothing itself: its transaction holds only the inbox row';

/**
 * b. Concurrent writers each flush aggregates (1 or 10 events each, one transaction per flush)
 * through a full Nest app: capture → relay → BullMQ → worker → handler in a transaction.
 */
export async function throughputPhase(bench: Bench, baseline: BaselineResult | undefined): Promise<ThroughputResult> {
  await emptyTables(bench.databaseUrl);
  const queueName = `${bench.runId}-throughput`;
  const app = await startBenchApp({
    databaseUrl: bench.databaseUrl,
    outbox: { redis: bench.redisUrl, prefix: queueName, worker: { concurrency: WORKER_CONCURRENCY } },
  });
  try {
    const orm = ormOf(app);
    const monitor = app.get(OutboxMonitor);
    // Warm-up: opens the pool's connections and lets the JIT settle; not recorded.
    await writeAndDrain(
      bench,
      orm,
      monitor,
      1,
      Math.min(500, Math.floor(bench.sizes.throughputEvents / 5)),
      () => undefined,
    );
    const modes: ThroughputMode[] = [];
    for (const perAggregate of [1, 10]) {
      bench.progress(
        `${bench.sizes.throughputEvents} events, ${perAggregate} per aggregate, ${bench.sizes.writers} writers`,
      );
      const mode = await writeAndDrain(bench, orm, monitor, perAggregate, bench.sizes.throughputEvents, (m) =>
        bench.progress(m),
      );
      modes.push({ ...mode, ratioToBaseline: baseline ? mode.eventsPerSecond / baseline.endToEndPerSecond : null });
    }
    return { handler: HANDLER_NOTE, concurrency: WORKER_CONCURRENCY, modes };
  } finally {
    handled.listener = () => undefined;
    await app.close();
    await obliterateQueue(bench.redisUrl, 'bench', queueName);
  }
}

async function writeAndDrain(
  bench: Bench,
  orm: MikroORM,
  monitor: OutboxMonitor,
  perAggregate: number,
  events: number,
  progress: (message: string) => void,
): Promise<Omit<ThroughputMode, 'ratioToBaseline'>> {
  const aggregates = Math.ceil(events / perAggregate);
  const total = aggregates * perAggregate;
  const inboxBefore = await inboxCount(orm);
  const since = new Date();
  const cpu = readCpu();
  const all = signal();
  let handledCount = 0;
  handled.listener = () => {
    if (++handledCount === total) all.resolve();
  };
  let committed = 0;
  let firstCommit = 0;
  let next = 0;
  const stop = ticker(2000, () => progress(`  committed ${committed}/${total}, handled ${handledCount}/${total}`));
  try {
    const writer = async () => {
      while (next < aggregates) {
        const em = orm.em.fork();
        em.persist(BenchAggregate.create(next++, perAggregate, now()));
        await em.flush();
        firstCommit ||= now();
        committed += perAggregate;
      }
    };
    await Promise.all(Array.from({ length: bench.sizes.writers }, writer));
    const lastCommit = now();
    await within(all.promise, 300_000, `${total} handler runs`);
    // The handler's transaction (with its inbox row) commits after handle() returns; done means committed.
    await waitUntil('every inbox row', async () => (await inboxCount(orm)) >= inboxBefore + total, 60_000);
    const seconds = (now() - firstCommit) / 1000;
    const cpuSplit = cpuSince(cpu);
    await waitUntil('the outbox to settle', () => monitor.isSettled(), 60_000, 20);
    return {
      eventsPerAggregate: perAggregate,
      events: total,
      writers: bench.sizes.writers,
      seconds,
      eventsPerSecond: total / seconds,
      committedPerSecond: total / Math.max(0.001, (lastCommit - firstCommit) / 1000),
      relayBatches: await relayBatches(orm, since),
      cpu: cpuSplit,
    };
  } finally {
    stop();
  }
}

async function inboxCount(orm: MikroORM): Promise<number> {
  const [row] = await orm.em
    .getConnection()
    .execute<Array<{ n: number }>>('select count(*)::int as n from inbox_message');
  return row.n;
}

async function relayBatches(orm: MikroORM, since: Date): Promise<number> {
  // Every mark statement stamps its whole batch with one now(): one distinct value per batch.
  const [row] = await orm.em
    .getConnection()
    .execute<Array<{ n: number }>>(
      'select count(distinct dispatched_at)::int as n from outbox_message where occurred_at >= ?',
      [since],
    );
  return row.n;
}
