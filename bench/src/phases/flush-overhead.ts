import { join } from 'node:path';
import { MikroORM } from '@mikro-orm/postgresql';
import type { INestApplicationContext } from '@nestjs/common';
import { withConnection } from '../../../test/support/database.js';
import { BenchAggregate, startBenchApp, ormOf } from '../bench.app.js';
import { now, type Bench } from '../harness.js';
import { rowsInsertMs } from '../measure/rows-insert.js';
import { median } from '../measure/stats.js';
import { CAPTURE_FOR_RELAY, benchOutboxOptions } from '../outbox-options.js';
import { summariseProfile, type ProfileSummary } from '../profile-top.js';
import { profiled } from '../profile.js';
import { fix, ms, resultOf, type PhaseDefinition, type Row, type TargetDefinition } from './phase.js';

/** Column type of the outbox's payload and headers: the library's schema (json), or a lever to compare. */
export type PayloadColumn = 'jsonb' | 'json' | 'text';

export interface FlushCase {
  aggregates: number;
  column: PayloadColumn;
  /** Flushes timed per side. */
  flushes: number;
  /** Median ms of one unit of work (persist + flush + commit). */
  offMs: number;
  onMs: number;
  /** onMs / offMs. */
  ratio: number;
  /** onMs - offMs: what capture adds to the request. */
  addedMs: number;
  /** CPU of this (node) process per flush, ms, without and with capture. */
  offCpuMs: number;
  onCpuMs: number;
  /** PostgreSQL alone storing the same rows, on a bare `pg` client (measure/rows-insert.ts). */
  rowsInsertMs: number;
  /**
   * (offMs + rowsInsertMs) / offMs: the ratio if capture cost nothing but PostgreSQL's work on the
   * rows. Capture can come in under it only by saving round trips (it sends BEGIN with the flush's
   * first statement).
   */
  rowsOnlyRatio: number;
}

export interface FlushOverheadResult {
  cases: FlushCase[];
  /** `--profile`: the "on" and "off" sides of each case under the V8 profiler, per flush. */
  profiles?: Record<string, ProfileSummary & { file: string }>;
}

const ROUNDS = 5;
/** The library's own schema first: the targets read it. The others are levers (issue 10, item 6). */
const COLUMNS: PayloadColumn[] = ['json', 'jsonb', 'text'];

/**
 * The price of capture alone, as the user's request sees it. "off" is plain MikroORM with the same
 * entities (the aggregate's events stay in memory and are cleared after the flush); "on" adds
 * OutboxModule with relay and worker off, so its flush also writes one outbox row per event (left
 * pending: no service consumes them in this phase, so sending them on commit would only hand them
 * back). Both
 * apps run side by side and the sides alternate in rounds, so background noise falls on both;
 * medians drop the outliers it causes. Then the same with payload and headers stored as jsonb (the
 * library's schema before its json migration) and as text: levers, measured.
 */
export const flushOverhead: PhaseDefinition<FlushOverheadResult> = {
  name: 'flushOverhead',
  title: 'flush overhead (capture on / off)',
  async run(bench) {
    let off: INestApplicationContext | undefined;
    let on: INestApplicationContext | undefined;
    try {
      off = await startBenchApp({ databaseUrl: bench.databaseUrl, outbox: false, poolMax: 4 });
      on = await startBenchApp({
        databaseUrl: bench.databaseUrl,
        outbox: benchOutboxOptions(bench, CAPTURE_FOR_RELAY),
        poolMax: 4,
      });
      const sides = { off: ormOf(off), on: ormOf(on) };
      const sizes = [
        [1, bench.sizes.flushSingle],
        [100, bench.sizes.flushHundred],
      ] as const;
      bench.progress('warming both sides up with every case, unmeasured');
      for (const [aggregates, flushes] of sizes) await warmUp(sides, aggregates, flushes);
      const cases: FlushCase[] = [];
      for (const column of COLUMNS) {
        await setPayloadColumn(bench.databaseUrl, column);
        for (const [aggregates, flushes] of sizes) {
          bench.progress(
            `payload ${column}: ${aggregates} aggregate(s) + event(s) per flush, ${flushes} flushes per side`,
          );
          const measured = await measureCase(sides, aggregates, flushes, column);
          const rowsInsert = await rowsInsertMs(bench.databaseUrl, aggregates, flushes);
          cases.push({
            ...measured,
            rowsInsertMs: rowsInsert,
            rowsOnlyRatio: (measured.offMs + rowsInsert) / measured.offMs,
          });
        }
      }
      const result: FlushOverheadResult = { cases };
      if (bench.profile) result.profiles = await profileSides(bench, sides);
      return result;
    } finally {
      await setPayloadColumn(bench.databaseUrl, 'json');
      await on?.close();
      await off?.close();
    }
  },
  rows(r) {
    const rows: Row[] = [];
    for (const k of r.cases) {
      const library = k.column === 'json';
      rows.push({
        measure: `${k.aggregates} aggregate(s) + ${k.aggregates} event(s), payload ${k.column}${library ? '' : ' (lever)'}, median of ${k.flushes}`,
        value: `off ${ms(k.offMs, 2)}, on ${ms(k.onMs, 2)}: +${ms(k.addedMs, 2)}, ×${fix(k.ratio)}`,
        target: library ? (k.aggregates === 1 ? 'flush.ratio.1' : 'flush.ratio.100') : undefined,
      });
      if (library && k.aggregates === 1)
        rows.push({ measure: '  added per flush', value: ms(k.addedMs, 3), target: 'flush.added.1' });
      rows.push({ measure: '  node CPU per flush, off / on', value: `${ms(k.offCpuMs, 3)} / ${ms(k.onCpuMs, 3)}` });
      rows.push({
        measure: "  the rows' INSERT alone, bare pg client",
        value: `+${ms(k.rowsInsertMs, 2)}: ×${fix(k.rowsOnlyRatio)} if capture cost nothing else`,
      });
    }
    return rows;
  },
  targets: [
    flushTarget('flush.added.1', 'time a flush with one aggregate + one event adds (ms)', 0.2, (k) => k.addedMs, 1),
    flushTarget('flush.ratio.1', 'flush on / off, 1 aggregate + 1 event', 1.3, (k) => k.ratio, 1),
    flushTarget('flush.ratio.100', 'flush on / off, 100 aggregates + 100 events', 1.5, (k) => k.ratio, 100),
  ],
};

function flushTarget(
  id: string,
  label: string,
  goal: number,
  figure: (k: FlushCase) => number,
  aggregates: number,
): TargetDefinition {
  return {
    id,
    label,
    goal: { op: '≤', value: goal },
    evaluate(all) {
      const k = resultOf<FlushOverheadResult>(all, 'flushOverhead')?.cases.find(
        (c) => c.aggregates === aggregates && c.column === 'json',
      );
      if (!k) return { value: null, detail: 'n/a' };
      return {
        value: figure(k),
        detail:
          `on ${ms(k.onMs, 2)} / off ${ms(k.offMs, 2)} = ×${fix(k.ratio)}, +${ms(k.addedMs, 3)}; ` +
          `the rows' INSERT alone +${ms(k.rowsInsertMs, 3)} (×${fix(k.rowsOnlyRatio)})`,
      };
    },
  };
}

type Sides = { off: MikroORM; on: MikroORM };

/**
 * Runs a case's full count on both sides before anything is timed. The first case measured used
 * to run on code the JIT had not finished with: in a run of four identical cases, node CPU per
 * one-event flush fell from 0.63 to 0.32 ms (off) between the first and the last.
 */
async function warmUp(sides: Sides, aggregates: number, flushes: number): Promise<void> {
  for (const side of ['off', 'on'] as const) await time(sides[side], aggregates, flushes, side === 'off');
}

async function measureCase(
  sides: Sides,
  aggregates: number,
  flushes: number,
  column: PayloadColumn,
): Promise<Omit<FlushCase, 'rowsInsertMs' | 'rowsOnlyRatio'>> {
  // Warm-up per side: JIT, pool connections, prepared metadata.
  for (const side of ['off', 'on'] as const)
    await time(sides[side], aggregates, Math.max(5, Math.ceil(flushes / 10)), side === 'off');
  const times = { off: [] as number[], on: [] as number[] };
  const cpuMs = { off: 0, on: 0 };
  const perRound = Math.ceil(flushes / ROUNDS);
  for (let round = 0; round < ROUNDS; round++) {
    const order = round % 2 === 0 ? (['on', 'off'] as const) : (['off', 'on'] as const);
    for (const side of order) {
      const cpu = process.cpuUsage();
      times[side].push(...(await time(sides[side], aggregates, perRound, side === 'off')));
      const used = process.cpuUsage(cpu);
      cpuMs[side] += (used.user + used.system) / 1000;
    }
  }
  const offMs = median(times.off);
  const onMs = median(times.on);
  return {
    aggregates,
    column,
    flushes: times.on.length,
    offMs,
    onMs,
    ratio: onMs / offMs,
    addedMs: onMs - offMs,
    offCpuMs: cpuMs.off / times.off.length,
    onCpuMs: cpuMs.on / times.on.length,
  };
}

/** Times `count` units of work on `orm`: create `aggregates` aggregates with one event each, persist, flush. */
async function time(orm: MikroORM, aggregates: number, count: number, clearEvents: boolean): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < count; i++) {
    const em = orm.em.fork();
    const batch = Array.from({ length: aggregates }, (_, n) => BenchAggregate.create(n, 1, now()));
    const started = now();
    em.persist(batch);
    await em.flush();
    // Without the outbox nobody takes the events: drop them as the library does after its flush.
    if (clearEvents) for (const aggregate of batch) aggregate.uncommit();
    out.push(now() - started);
  }
  return out;
}

/** Stores payload and headers as `column`; the table is emptied first, so every block starts alike. */
async function setPayloadColumn(url: string, column: PayloadColumn): Promise<void> {
  await withConnection(url, async (execute) => {
    await execute('truncate outbox_message, bench_aggregate');
    await execute(
      `alter table outbox_message alter column payload type ${column} using payload::${column},
       alter column headers type ${column} using headers::${column}`,
    );
  });
}

/** Profiles each side of both cases (library schema), so capture's share of a flush can be read per package. */
async function profileSides(bench: Bench, sides: Sides): Promise<Record<string, ProfileSummary & { file: string }>> {
  const out: Record<string, ProfileSummary & { file: string }> = {};
  for (const [aggregates, flushes] of [
    [1, bench.sizes.flushSingle],
    [100, bench.sizes.flushHundred],
  ] as const) {
    for (const side of ['off', 'on'] as const) {
      const file = join(bench.outDir, `flush-${aggregates}-${side}.cpuprofile`);
      await profiled(file, () => time(sides[side], aggregates, flushes, side === 'off'), 250);
      out[`${aggregates}-${side}`] = { file, ...summariseProfile(file, 15, flushes) };
    }
  }
  return out;
}
