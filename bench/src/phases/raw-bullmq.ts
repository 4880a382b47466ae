import { Queue, Worker } from 'bullmq';
import type { OutboxJobData } from 'nest-outbox';
import { RAW_QUEUE, jobs, redisConnection, type BulkJob } from '../bullmq-jobs.js';
import { ADD_BULK_BATCH, WORKER_CONCURRENCY, now, signal, ticker, within, type Bench } from '../harness.js';
import { cpuBetween, cpuSnapshot, type CpuReport } from '../measure/cpu.js';
import { cpuSources } from '../measure/end-to-end.js';
import { int, ms, pct, type PhaseDefinition } from './phase.js';

export interface RawBullmqResult {
  jobs: number;
  batch: number;
  concurrency: number;
  payloadBytes: number;
  /** addBulk (sequential batches) with a Worker consuming in the same process: first add → last job completed. */
  endToEndPerSecond: number;
  /** addBulk alone, no worker running: what the relay's enqueue step is compared with. */
  addBulkPerSecond: number;
  cpu: CpuReport;
}

/**
 * Raw BullMQ, no database: how fast Redis and BullMQ alone move these jobs, producer and worker
 * in this one process. Jobs are the relay's jobs (bullmq-jobs.ts), so only the outbox's work differs.
 */
export const rawBullmq: PhaseDefinition<RawBullmqResult> = {
  name: 'rawBullmq',
  title: 'raw BullMQ',
  async run(bench) {
    const n = bench.sizes.baselineJobs;
    bench.progress(`addBulk only: ${n} jobs in batches of ${ADD_BULK_BATCH}`);
    const addSeconds = await addAll(bench, `${RAW_QUEUE}-add`, jobs(n));
    bench.progress(`addBulk + Worker (concurrency ${WORKER_CONCURRENCY}): ${n} jobs`);
    const sources = cpuSources(bench, { bullmq: [{ pid: process.pid }] });
    const start = cpuSnapshot(sources);
    const e2eSeconds = await addAndConsume(bench, `${RAW_QUEUE}-e2e`, jobs(n));
    const cpu = cpuBetween(start, cpuSnapshot(sources), sources, n);
    return {
      jobs: n,
      batch: ADD_BULK_BATCH,
      concurrency: WORKER_CONCURRENCY,
      payloadBytes: Buffer.byteLength(jobs(1)[0].data.payload),
      endToEndPerSecond: n / e2eSeconds,
      addBulkPerSecond: n / addSeconds,
      cpu,
    };
  },
  rows: (a) => [
    {
      measure: `addBulk(${a.batch}) + Worker(${a.concurrency}) in one process, end to end`,
      value: `${int(a.endToEndPerSecond)} jobs/s`,
    },
    {
      measure: '  CPU per job: node / redis',
      value: `${ms(a.cpu.byProcess.bullmq.msPerEvent, 3)} / ${ms(a.cpu.byProcess.redis.msPerEvent, 3)} (machine ${pct(a.cpu.machineBusy)} busy)`,
    },
    { measure: 'addBulk only, no worker', value: `${int(a.addBulkPerSecond)} jobs/s` },
    { measure: 'jobs / payload', value: `${int(a.jobs)} / ${a.payloadBytes} B` },
  ],
};

async function addInBatches(queue: Queue, all: BulkJob[]): Promise<void> {
  for (let i = 0; i < all.length; i += ADD_BULK_BATCH) await queue.addBulk(all.slice(i, i + ADD_BULK_BATCH));
}

async function addAll(bench: Bench, name: string, all: BulkJob[]): Promise<number> {
  const queue = new Queue(name, { connection: redisConnection(bench.redisUrl), prefix: bench.prefix });
  try {
    await queue.waitUntilReady();
    const started = now();
    await addInBatches(queue, all);
    return (now() - started) / 1000;
  } finally {
    await queue.close();
  }
}

async function addAndConsume(bench: Bench, name: string, all: BulkJob[]): Promise<number> {
  const connection = redisConnection(bench.redisUrl);
  const queue = new Queue(name, { connection, prefix: bench.prefix });
  let completed = 0;
  let finishedAt = 0;
  const done = signal();
  // The "handler" reads the payload, as the outbox worker must; nothing else.
  const worker = new Worker<OutboxJobData>(name, async (job) => void JSON.parse(job.data.payload), {
    connection,
    prefix: bench.prefix,
    concurrency: WORKER_CONCURRENCY,
  });
  worker.on('completed', () => {
    if (++completed === all.length) {
      finishedAt = now();
      done.resolve();
    }
  });
  const stop = ticker(2000, () => bench.progress(`  ${completed}/${all.length} completed`));
  try {
    await Promise.all([queue.waitUntilReady(), worker.waitUntilReady()]);
    const started = now();
    await addInBatches(queue, all);
    await within(done.promise, 300_000, 'the baseline worker to complete every job');
    return (finishedAt - started) / 1000;
  } finally {
    stop();
    await worker.close();
    await queue.close();
  }
}
