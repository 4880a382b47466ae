import { MikroORM } from '@mikro-orm/postgresql';
import type { INestApplicationContext } from '@nestjs/common';
import { BenchAggregate, startBenchApp, ormOf } from '../bench.app.js';
import { emptyTables, median, now, obliterateQueue, type Bench } from '../harness.js';

export interface FlushCase {
  aggregates: number;
  /** Flushes timed per side. */
  flushes: number;
  /** Median ms of one unit of work (persist + flush + commit). */
  offMs: number;
  onMs: number;
  /** onMs / offMs. */
  ratio: number;
}

export interface FlushOverheadResult {
  cases: FlushCase[];
}

const ROUNDS = 5;

/**
 * d. The price of capture alone. "off" is plain MikroORM with the same entities (the aggregate's
 * events stay in memory and are cleared after the flush); "on" adds OutboxModule with relay and
 * worker disabled, so its flush also writes one outbox row per event. Both apps run side by side
 * and the sides alternate in rounds, so background noise (other processes on this machine) falls
 * on both; medians drop the outliers it causes.
 */
export async function flushOverheadPhase(bench: Bench): Promise<FlushOverheadResult> {
  await emptyTables(bench.databaseUrl);
  const queueName = `${bench.runId}-flush`;
  let off: INestApplicationContext | undefined;
  let on: INestApplicationContext | undefined;
  try {
    off = await startBenchApp({ databaseUrl: bench.databaseUrl, outbox: false });
    on = await startBenchApp({
      databaseUrl: bench.databaseUrl,
      outbox: { redis: bench.redisUrl, prefix: queueName, relay: { enabled: false }, worker: { enabled: false } },
    });
    const sides = { off: ormOf(off), on: ormOf(on) };
    const cases: FlushCase[] = [];
    for (const [aggregates, flushes] of [
      [1, bench.sizes.flushSingle],
      [100, bench.sizes.flushHundred],
    ] as const) {
      bench.progress(`${aggregates} aggregate(s) + ${aggregates} event(s) per flush, ${flushes} flushes per side`);
      // Warm-up per side: JIT, pool connections, prepared metadata.
      for (const orm of [sides.off, sides.on])
        await time(orm, aggregates, Math.max(5, Math.ceil(flushes / 10)), orm === sides.off);
      const times = { off: [] as number[], on: [] as number[] };
      const perRound = Math.ceil(flushes / ROUNDS);
      for (let round = 0; round < ROUNDS; round++) {
        const order = round % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const);
        for (const side of order) times[side].push(...(await time(sides[side], aggregates, perRound, side === 'off')));
      }
      const offMs = median(times.off);
      const onMs = median(times.on);
      cases.push({ aggregates, flushes: times.on.length, offMs, onMs, ratio: onMs / offMs });
    }
    return { cases };
  } finally {
    await on?.close();
    await off?.close();
    await obliterateQueue(bench.redisUrl, 'bench', queueName);
  }
}

/** Times `count` units of work on `orm`: create `aggregates` aggregates with one event each, persist, flush. */
async function time(orm: MikroORM, aggregates: number, count: number, clearEvents: boolean): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const em = orm.em.fork();
    const batch = Array.from({ length: aggregates }, (_, n) => BenchAggregate.create(n, 1, Date.now()));
    const started = now();
    em.persist(batch);
    await em.flush();
    // Without the outbox nobody takes the events: drop them as the library does after its flush.
    if (clearEvents) for (const aggregate of batch) aggregate.uncommit();
    out.push(now() - started);
  }
  return out;
}
