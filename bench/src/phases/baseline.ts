import { randomUUID } from 'node:crypto';
import { Queue, Worker, type JobsOptions } from 'bullmq';
import type { OutboxJobData } from 'nest-outbox';
import { SomethingHappened } from '../bench.app.js';
import { cpuSince, readCpu, type CpuSplit } from '../cpu.js';
import {
  ADD_BULK_BATCH,
  WORKER_CONCURRENCY,
  now,
  obliterateQueue,
  redisConnection,
  signal,
  ticker,
  within,
  type Bench,
} from '../harness.js';

export interface BaselineResult {
  jobs: number;
  batch: number;
  concurrency: number;
  payloadBytes: number;
  /** addBulk (sequential batches) with a Worker consuming in the same process: first add → last job completed. */
  endToEndPerSecond: number;
  /** addBulk alone, no worker running: what the relay's enqueue step is compared with in phase e. */
  addBulkPerSecond: number;
  /** Where the CPU went during the end-to-end run. */
  cpu: CpuSplit;
}

/**
 * a. Raw BullMQ, no database: the ceiling for the outbox. Jobs carry exactly what the relay puts
 * on a job (same data shape, payload text and job options), so only the outbox's work differs.
 */
export async function baselinePhase(bench: Bench): Promise<BaselineResult> {
  const n = bench.sizes.baselineJobs;
  const addOnly = `${bench.runId}-base-add`;
  const endToEnd = `${bench.runId}-base-e2e`;
  try {
    bench.progress(`addBulk only: ${n} jobs in batches of ${ADD_BULK_BATCH}`);
    const addSeconds = await addAll(bench, addOnly, jobs(n));
    bench.progress(`addBulk + Worker (concurrency ${WORKER_CONCURRENCY}): ${n} jobs`);
    const cpu = readCpu();
    const e2eSeconds = await addAndConsume(bench, endToEnd, jobs(n));
    const cpuSplit = cpuSince(cpu);
    return {
      jobs: n,
      batch: ADD_BULK_BATCH,
      concurrency: WORKER_CONCURRENCY,
      payloadBytes: Buffer.byteLength(payloadText()),
      endToEndPerSecond: n / e2eSeconds,
      addBulkPerSecond: n / addSeconds,
      cpu: cpuSplit,
    };
  } finally {
    await obliterateQueue(bench.redisUrl, addOnly);
    await obliterateQueue(bench.redisUrl, endToEnd);
  }
}

type BulkJob = { name: string; data: OutboxJobData; opts: JobsOptions };

/** The job options the relay gives a job with default outbox options (see libs/outbox/src/relay/relay.queue.ts). */
function relayJobOptions(): JobsOptions {
  return {
    attempts: 5,
    backoff: { type: 'exponential', delay: 1000, jitter: 0.25 },
    removeOnComplete: { age: 86_400 },
    removeOnFail: false,
  };
}

function payloadText(): string {
  return JSON.stringify(new SomethingHappened(randomUUID(), 0, Date.now()));
}

function jobs(n: number): BulkJob[] {
  const opts = relayJobOptions();
  return Array.from({ length: n }, () => {
    const id = randomUUID();
    const type = 'bench.something-happened.v1';
    const headers = { messageId: id, correlationId: id, occurredAt: new Date().toISOString() };
    return {
      name: type,
      data: { type, payload: payloadText(), headers, aggregateType: 'BenchAggregate', aggregateId: randomUUID() },
      opts: { ...opts, jobId: id },
    };
  });
}

async function addInBatches(queue: Queue, all: BulkJob[]): Promise<void> {
  for (let i = 0; i < all.length; i += ADD_BULK_BATCH) await queue.addBulk(all.slice(i, i + ADD_BULK_BATCH));
}

async function addAll(bench: Bench, name: string, all: BulkJob[]): Promise<number> {
  const queue = new Queue(name, { connection: redisConnection(bench.redisUrl) });
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
  const queue = new Queue(name, { connection: redisConnection(bench.redisUrl) });
  let completed = 0;
  let finishedAt = 0;
  const done = signal();
  // The "handler" reads the payload, as the outbox worker must; nothing else.
  const worker = new Worker<OutboxJobData>(name, async (job) => void JSON.parse(job.data.payload), {
    connection: redisConnection(bench.redisUrl),
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
