import 'reflect-metadata';
import { fork } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Bench } from './harness.js';
import { nodeWarnings } from './nodes/node-process.js';
import { letterOf, phaseNamed } from './phases/index.js';
import { deleteKeys } from './redis-keys.js';

/**
 * Each phase runs in a fresh Node process (this file, forked by bench.ts), so no phase inherits
 * another's heap, JIT state or stray timers, and a phase that leaves a connection open shows up as
 * a process that does not exit. The phase process coordinates: the processes it measures (API,
 * outbox, baselines' workers) are further children it starts (nodes/).
 */

/** What the parent hands a phase process: the Bench minus its progress function. */
export type PhaseContext = Omit<Bench, 'progress'> & { name: string };

type Reply = { result: unknown; warnings: string[] } | { error: string };

const CHILD_EXIT_MS = 6_000;

export interface PhaseOutcome {
  result: unknown;
  /** Processes of the phase that had to be killed because something kept them alive after their work. */
  warnings: string[];
}

export function labelOf(name: string): string {
  return `${letterOf(name)} ${phaseNamed(name).title}`;
}

/** Parent side: runs one phase in a child process and returns what it reported. */
export function runPhaseProcess(context: PhaseContext): Promise<PhaseOutcome> {
  return new Promise((resolve, reject) => {
    const child = fork(fileURLToPath(import.meta.url), [], {
      env: { ...process.env, NEST_OUTBOX_BENCH_PHASE: JSON.stringify(context) },
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
      const warnings = reply.warnings.map((w) => `${labelOf(context.name)}: ${w}`);
      if (signal)
        warnings.push(
          `${labelOf(context.name)}: process did not exit by itself within ${CHILD_EXIT_MS / 1000} s after its result (killed)`,
        );
      resolve({ result: reply.result, warnings });
    });
  });
}

// Child side: started by runPhaseProcess with the context in the environment.
const raw = process.env.NEST_OUTBOX_BENCH_PHASE;
if (raw && process.send && process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  const context = JSON.parse(raw) as PhaseContext;
  const label = labelOf(context.name);
  const bench: Bench = { ...context, progress: (message) => console.log(`[${label}] ${message}`) };
  const explainHang = () =>
    setTimeout(() => {
      // Names the sockets' peers (6379: Redis, 5432: PostgreSQL), which says whose connection leaked.
      const sockets = (process as unknown as { _getActiveHandles(): Array<{ remotePort?: number }> })
        ._getActiveHandles()
        .flatMap((h) => (h.remotePort ? [h.remotePort] : []));
      console.error(
        `[${label}] still running after its result; open: ${process.getActiveResourcesInfo().join(', ')}; sockets to ports ${sockets.join(', ') || 'none'}`,
      );
    }, CHILD_EXIT_MS - 1000).unref();
  phaseNamed(context.name)
    .run(bench)
    // Redis keeps completed jobs for a day: a phase takes its jobs with it, so the next starts on a small Redis.
    .finally(() => deleteKeys(context.redisUrl, `${context.prefix}:*`))
    .finally(explainHang)
    .then(
      (result) => process.send!({ result, warnings: nodeWarnings } satisfies Reply, () => process.disconnect()),
      (error: unknown) => {
        console.error(`[${label}] ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
        process.send!({ error: error instanceof Error ? error.message : String(error) } satisfies Reply, () =>
          process.disconnect(),
        );
      },
    );
}
