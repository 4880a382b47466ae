import { Queue } from 'bullmq';
import { emptyTables } from '../bench-db.js';
import { CEILING_QUEUE, jobs, redisConnection } from '../bullmq-jobs.js';
import { ADD_BULK_BATCH, WORKER_CONCURRENCY, now, type Bench } from '../harness.js';
import { callsPerEvent, readCalls, type Calls } from '../measure/calls.js';
import { cpuBetween, cpuSnapshot, type CpuReport } from '../measure/cpu.js';
import { cpuSources } from '../measure/end-to-end.js';
import { allHandled, startNode } from '../nodes/node-process.js';
import { callRows, cpuRows } from './run-rows.js';
import { int, type PhaseDefinition } from './phase.js';

export interface ConsumeCeilingResult {
  jobs: number;
  concurrency: number;
  /** Worker started → last job's transaction committed. */
  seconds: number;
  jobsPerSecond: number;
  /** Highest RSS of the worker process (VmHWM, boot included). */
  peakRssMB: number;
  cpu: CpuReport;
  /** Per job, statements and Redis commands the worker process sent. */
  calls: Calls;
}

/**
 * Consume ceiling: jobs waiting in BullMQ, one worker process taking them with the outbox's
 * concurrency and doing the least a consumer writing to PostgreSQL can do — one plain `pg`
 * transaction inserting one row per job. What the drain through the handlers is compared with.
 */
export const consumeCeiling: PhaseDefinition<ConsumeCeilingResult> = {
  name: 'consumeCeiling',
  title: 'consume ceiling',
  async run(bench) {
    const n = bench.sizes.backlogRows;
    await emptyTables(bench.databaseUrl);
    bench.progress(`queueing ${n} jobs`);
    await preload(bench, n);
    const node = await startNode(bench, 'ceiling worker', { kind: 'ceiling', poolMax: WORKER_CONCURRENCY + 2 });
    try {
      bench.progress(`one pg transaction per job, concurrency ${WORKER_CONCURRENCY}`);
      await node.track(false);
      const roles = { worker: [node] };
      const sources = cpuSources(bench, roles);
      const callsStart = await readCalls(roles);
      const start = cpuSnapshot(sources);
      const started = now();
      await node.call('start');
      const lastAt = await allHandled([node], n, 600_000);
      const cpu = cpuBetween(start, cpuSnapshot(sources), sources, n);
      const calls = callsPerEvent(callsStart, await readCalls(roles), n);
      const seconds = (lastAt - started) / 1000;
      const peakRssMB = node.memory()?.peakMB ?? NaN;
      await node.close();
      return { jobs: n, concurrency: WORKER_CONCURRENCY, seconds, jobsPerSecond: n / seconds, peakRssMB, cpu, calls };
    } catch (error) {
      node.kill();
      throw error;
    }
  },
  rows: (r) => [
    {
      measure: `${int(r.jobs)} queued jobs, BullMQ Worker(${r.concurrency}) + one pg transaction each`,
      value: `${int(r.jobsPerSecond)} jobs/s`,
    },
    { measure: '  peak RSS of the worker process', value: `${int(r.peakRssMB)} MB` },
    ...cpuRows(r.cpu, 'job'),
    ...callRows(r.calls, 'job'),
  ],
};

async function preload(bench: Bench, n: number): Promise<void> {
  const queue = new Queue(CEILING_QUEUE, { connection: redisConnection(bench.redisUrl), prefix: bench.prefix });
  try {
    for (let i = 0; i < n; i += ADD_BULK_BATCH) await queue.addBulk(jobs(Math.min(ADD_BULK_BATCH, n - i)));
  } finally {
    await queue.close();
  }
}
