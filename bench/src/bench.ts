import 'reflect-metadata';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { renderChart } from './chart.js';
import { FULL, QUICK, dropDatabase, freshBenchDatabase, machine, now } from './harness.js';
import { PHASES, runPhaseProcess, type PhaseContext, type PhaseName } from './phase.js';
import { formatSummary, summariseProfile } from './profile-top.js';
import { formatTable, targetsOf, type Phases, type Results } from './report.js';

/**
 * npm run bench [-- --quick] [--profile] [--only baseline,throughput,...] [--out dir]
 *
 * Runs every phase, one after the other and each in a fresh process (phase.ts), against local
 * PostgreSQL and Redis in a database made fresh for the run; prints a table, writes results.json
 * and results.svg (to bench/, or .tmp/bench-quick/ with --quick). --profile records the throughput
 * phase with the V8 CPU profiler, writes throughput.cpuprofile and prints its top self-time frames.
 */

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const LABEL: Record<PhaseName, string> = {
  baseline: 'a baseline',
  throughput: 'b throughput',
  latency: 'c latency',
  flushOverhead: 'd flush overhead',
  backlog: 'e backlog',
};

async function main(): Promise<number> {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean' },
      profile: { type: 'boolean' },
      only: { type: 'string' },
      out: { type: 'string' },
    },
  });
  const quick = values.quick === true;
  const only = values.only ? values.only.split(',').map((s) => s.trim()) : [...PHASES];
  const unknown = only.filter((name) => !(PHASES as readonly string[]).includes(name));
  if (unknown.length > 0) throw new Error(`Unknown phase(s) ${unknown.join(', ')}; phases are ${PHASES.join(', ')}.`);
  const outDir = resolve(ROOT, values.out ?? (quick ? '.tmp/bench-quick' : 'bench'));
  mkdirSync(outDir, { recursive: true });

  const adminUrl = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
  // A quick run (the jest test) gets its own database, so it never disturbs a full run going on.
  const database = quick ? `nest_outbox_bench_quick_${process.pid}` : 'nest_outbox_bench';
  const m = machine();
  console.log(
    `nest-outbox bench (${quick ? 'quick' : 'full'}) on ${m.cpu}, ${m.cores} cores, node ${m.node}; database ${database}`,
  );

  const started = now();
  const startedAt = new Date().toISOString();
  const sizes = quick ? QUICK : FULL;
  const databaseUrl = await freshBenchDatabase(adminUrl, database);
  const runId = `bench-${process.pid}-${Date.now().toString(36)}`;
  const profileFile = join(outDir, 'throughput.cpuprofile');
  const phases: Phases = {};
  const errors: Record<string, string> = {};
  const warnings: string[] = [];
  try {
    for (const name of PHASES.filter((phase) => only.includes(phase))) {
      const context: PhaseContext = {
        name,
        label: LABEL[name],
        quick,
        sizes,
        databaseUrl,
        redisUrl: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
        runId,
        baseline: phases.baseline,
        profileFile: values.profile && name === 'throughput' ? profileFile : undefined,
      };
      const phaseStarted = now();
      try {
        const outcome = await runPhaseProcess(context);
        (phases as Record<string, unknown>)[name] = outcome.result;
        if (outcome.hung) warnings.push(outcome.hung);
        console.log(`[${LABEL[name]}] done in ${((now() - phaseStarted) / 1000).toFixed(1)} s`);
      } catch (error) {
        errors[name] = error instanceof Error ? error.message : String(error);
        console.error(`[${LABEL[name]}] FAILED: ${errors[name]}`);
      }
    }
  } finally {
    if (quick) await dropDatabase(adminUrl, database);
  }

  const results: Results = {
    mode: quick ? 'quick' : 'full',
    startedAt,
    seconds: (now() - started) / 1000,
    machine: m,
    sizes,
    phases,
    errors,
    warnings,
    targets: targetsOf(phases),
  };
  if (values.profile && phases.throughput) {
    results.profile = { file: profileFile, ...summariseProfile(profileFile, 10) };
  }
  writeFileSync(join(outDir, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  writeFileSync(join(outDir, 'results.svg'), renderChart(results));

  console.log('\n' + formatTable(results));
  if (results.profile) {
    console.log(
      `\nCPU profile of phase b (${results.profile.file}; its figures above ran under the profiler):\n${formatSummary(results.profile)}`,
    );
  }
  console.log(`\nwrote ${join(outDir, 'results.json')} and results.svg in ${results.seconds.toFixed(0)} s`);
  return Object.keys(errors).length > 0 ? 1 : 0;
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
