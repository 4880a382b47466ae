import 'reflect-metadata';
import { fork } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Bench, BenchSizes } from './harness.js';
import { backlogPhase } from './phases/backlog.js';
import { baselinePhase, type BaselineResult } from './phases/baseline.js';
import { flushOverheadPhase } from './phases/flush-overhead.js';
import { latencyPhase } from './phases/latency.js';
import { throughputPhase } from './phases/throughput.js';
import { profiled } from './profile.js';

/**
 * Each phase runs in a fresh Node process (this file, forked by bench.ts), so no phase inherits
 * another's heap, JIT state or stray timers: phase e's RSS is then the relay's own, and a phase
 * that leaves a connection open shows up as a process that does not exit.
 */

export const PHASES = ['baseline', 'throughput', 'latency', 'flushOverhead', 'backlog'] as const;
export type PhaseName = (typeof PHASES)[number];

/** What the parent hands a phase process (the Bench minus its progress function). */
export interface PhaseContext {
  name: PhaseName;
  label: string;
  quick: boolean;
  sizes: BenchSizes;
  databaseUrl: string;
  redisUrl: string;
  runId: string;
  baseline?: BaselineResult;
  /** Write a .cpuprofile of this phase here. */
  profileFile?: string;
}

type Reply = { result: unknown } | { error: string };

const CHILD_EXIT_MS = 6_000;

export interface PhaseOutcome {
  result: unknown;
  /** Set when the phase process had to be killed because something kept it alive after its result. */
  hung?: string;
}

/** Parent side: runs one phase in a child process and returns what it reported. */
export function runPhaseProcess(context: PhaseContext): Promise<PhaseOutcome> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), [], {
      env: { ...process.env, NEST_OUTBOX_BENCH_PHASE: JSON.stringify(context) },
      // Phase e reads the live heap after a full GC, at boot and after its drain.
      execArgv: [...process.execArgv, '--expose-gc'],
      stdio: 'inherit',
    });
    let reply: Reply | undefined;
    let exitTimer: NodeJS.Timeout | undefined;
    child.on('message', (message: Reply) => {
      reply = message;
      // The phase closed everything it opened, so its process must now end by itself.
      exitTimer = setTimeout(() => child.kill('SIGKILL'), CHILD_EXIT_MS);
    });
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(exitTimer);
      if (!reply) return reject(new Error(`phase process exited (${signal ?? `code ${code}`}) without a result`));
      if ('error' in reply) return reject(new Error(reply.error));
      // A leak is reported, not fatal: the figures were taken before it and are still good.
      const hung = signal
        ? `${context.label}: process did not exit by itself within ${CHILD_EXIT_MS / 1000} s after its result (killed)`
        : undefined;
      resolve({ result: reply.result, hung });
    });
  });
}

async function runPhase(context: PhaseContext): Promise<unknown> {
  const bench: Bench = { ...context, progress: (message) => console.log(`[${context.label}] ${message}`) };
  switch (context.name) {
    case 'baseline':
      return baselinePhase(bench);
    case 'throughput': {
      const run = () => throughputPhase(bench, context.baseline);
      return context.profileFile ? profiled(context.profileFile, run) : run();
    }
    case 'latency':
      return latencyPhase(bench);
    case 'flushOverhead':
      return flushOverheadPhase(bench);
    case 'backlog':
      return backlogPhase(bench, context.baseline);
  }
}

// Child side: started by runPhaseProcess with the context in the environment.
const raw = process.env.NEST_OUTBOX_BENCH_PHASE;
if (raw && process.send && process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  const context = JSON.parse(raw) as PhaseContext;
  const explainHang = () =>
    setTimeout(() => {
      // Names the sockets' peers (6379: Redis, 5432: PostgreSQL), which says whose connection leaked.
      const sockets = (process as unknown as { _getActiveHandles(): Array<{ remotePort?: number }> })
        ._getActiveHandles()
        .flatMap((h) => (h.remotePort ? [h.remotePort] : []));
      console.error(
        `[${context.label}] still running after its result; open: ${process.getActiveResourcesInfo().join(', ')}; sockets to ports ${sockets.join(', ') || 'none'}`,
      );
    }, CHILD_EXIT_MS - 1000).unref();
  runPhase(context)
    .finally(explainHang)
    .then(
      (result) => process.send!({ result } satisfies Reply, () => process.disconnect()),
      (error: unknown) => {
        console.error(`[${context.label}] ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
        process.send!({ error: error instanceof Error ? error.message : String(error) } satisfies Reply, () =>
          process.disconnect(),
        );
      },
    );
}
