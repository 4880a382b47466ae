import 'reflect-metadata';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { benchDatabaseName, checkpoint, dropDatabase, freshBenchDatabase } from './bench-db.js';
import { renderChart } from './chart.js';
import { FULL, QUICK, loadAverage, machine, now, type BenchSizes } from './harness.js';
import { serverPids } from './measure/servers.js';
import { labelOf, runPhaseProcess, type PhaseContext } from './phase-process.js';
import { PHASES } from './phases/index.js';
import type { PhaseResults } from './phases/phase.js';
import { formatSummary, type ProfileSummary } from './profile-top.js';
import { deleteKeys } from './redis-keys.js';
import { formatTable, targetsOf, type Results } from './report.js';

/**
 * npm run bench [-- --quick] [--profile] [--only rawBullmq,latency,...] [--out dir] [--node-args="--flag ..."]
 *   [--sizes '{"backlogRows":30000}']
 *
 * Runs every phase of phases/index.ts, one after the other and each in a fresh process, against
 * local PostgreSQL and Redis, in a database made fresh for the run and under a BullMQ prefix of
 * its own; prints a table and the targets, writes results.json and results.svg (to bench/, or
 * .tmp/bench-quick/ with --quick). --profile adds V8 CPU profiles where a phase offers them (the
 * steady-rate run of every process, the flushes) and prints where their CPU went. --node-args
 * starts every measured process with extra Node flags; --sizes overrides sizes (for trying a lever
 * on one phase; ratios are then against baselines of other sizes only if those ran too).
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      profile: { type: 'boolean' },
      only: { type: 'string' },
      out: { type: 'string' },
      'node-args': { type: 'string' },
      sizes: { type: 'string' },
    },
  });
  const quick = values.quick === true;
  const names = PHASES.map((p) => p.name);
  const only = values.only ? values.only.split(',').map((s) => s.trim()) : names;
  const unknown = only.filter((name) => !names.includes(name));
  if (unknown.length > 0) throw new Error(`Unknown phase(s) ${unknown.join(', ')}; phases are ${names.join(', ')}.`);
  const outDir = resolve(ROOT, values.out ?? (quick ? '.tmp/bench-quick' : 'bench'));
  mkdirSync(outDir, { recursive: true });

  const adminUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const database = benchDatabaseName(quick);
  const m = machine();
  console.log(
    `nest-outbox bench (${quick ? 'quick' : 'full'}) on ${m.cpu}, ${m.cores} cores, node ${m.node}; ` +
      `load average ${m.loadAtStart.join(' ')}; database ${database}`,
  );
  if (!quick && m.loadAtStart[0] > m.cores / 4)
    console.log(
      `warning: the machine is busy (load ${m.loadAtStart[0]} on ${m.cores} cores): the figures will be noisy`,
    );

  const sizes: BenchSizes = {
    ...(quick ? QUICK : FULL),
    ...(values.sizes ? (JSON.parse(values.sizes) as Partial<BenchSizes>) : {}),
  };
  const nodeArgs = values['node-args']?.split(/\s+/).filter(Boolean) ?? [];
  const started = now();
  const startedAt = new Date().toISOString();
  const databaseUrl = await freshBenchDatabase(adminUrl, database);
  const prefix = `nob-${process.pid}-${Date.now().toString(36)}`;
  const phases: PhaseResults = {};
  const phaseLoad: Record<string, number[]> = {};
  const errors: Record<string, string> = {};
  const warnings: string[] = [];
  try {
    const servers = await serverPids(databaseUrl, redisUrl);
    for (const name of names.filter((n) => only.includes(n))) {
      const context: PhaseContext = {
        name,
        quick,
        sizes,
        databaseUrl,
        database,
        redisUrl,
        // Each phase's BullMQ keys under a prefix of their own (see redis-keys.ts).
        prefix: `${prefix}-${name}`,
        servers,
        outDir,
        profile: values.profile === true,
        nodeArgs,
      };
      const refused = await checkpoint(databaseUrl);
      if (refused && !warnings.includes(refused)) warnings.push(refused);
      const phaseStarted = now();
      phaseLoad[name] = loadAverage();
      try {
        const outcome = await runPhaseProcess(context);
        phases[name] = outcome.result;
        warnings.push(...outcome.warnings);
        console.log(`[${labelOf(name)}] done in ${((now() - phaseStarted) / 1000).toFixed(1)} s`);
      } catch (error) {
        errors[name] = error instanceof Error ? error.message : String(error);
        console.error(`[${labelOf(name)}] FAILED: ${errors[name]}`);
      }
    }
  } finally {
    // Phases delete their keys when they end; this catches a phase process that died first.
    await deleteKeys(redisUrl, `${prefix}-*`);
    if (quick) await dropDatabase(adminUrl, database);
  }

  const results: Results = {
    mode: quick ? 'quick' : 'full',
    startedAt,
    seconds: (now() - started) / 1000,
    machine: m,
    loadAtEnd: loadAverage(),
    phaseLoad,
    database,
    sizes,
    nodeArgs,
    phaseNames: names,
    phases,
    errors,
    warnings,
    targets: targetsOf(phases),
  };
  writeFileSync(join(outDir, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  writeFileSync(join(outDir, 'results.svg'), renderChart(results));

  console.log('\n' + formatTable(results));
  for (const [path, summary] of profilesIn(phases)) {
    console.log(
      `\nCPU profile ${path} (${summary.file}; a run of its own, not the figures above):\n${formatSummary(summary)}`,
    );
  }
  console.log(`\nwrote ${join(outDir, 'results.json')} and results.svg in ${results.seconds.toFixed(0)} s`);
  return Object.keys(errors).length > 0 ? 1 : 0;
}

/** Every profile summary a phase left in its result, with where it sits. */
function profilesIn(value: unknown, path = ''): Array<[string, ProfileSummary & { file: string }]> {
  if (!value || typeof value !== 'object') return [];
  const v = value as Record<string, unknown>;
  if (typeof v.file === 'string' && Array.isArray(v.frames))
    return [[path, v as unknown as ProfileSummary & { file: string }]];
  return Object.entries(v).flatMap(([k, child]) => profilesIn(child, path ? `${path}.${k}` : k));
}

/** The process must end by itself; if something still holds it open, say what and stop. */
function finish(code: number): void {
  process.exitCode = code;
  setTimeout(() => {
    console.error(
      `bench: still running 15 s after the last phase; open resources: ${process.getActiveResourcesInfo().join(', ')}`,
    );
    process.exit(code || 1);
  }, 15_000).unref();
}

main().then(finish, (error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  finish(1);
});
