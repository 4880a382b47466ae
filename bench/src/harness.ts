import { arch, cpus, loadavg, platform, totalmem } from 'node:os';
import { MikroORM } from '@mikro-orm/postgresql';
import { Queue } from 'bullmq';
import { outboxSchemaSql } from 'nest-outbox';

/** Sizes of every phase; `--quick` shrinks them so the whole run stays well under a minute. */
export interface BenchSizes {
  /** a: jobs per baseline measurement. */
  baselineJobs: number;
  /** b: events per throughput mode. */
  throughputEvents: number;
  /** b: concurrent writers (each its own EntityManager fork and transaction). */
  writers: number;
  /** c: steady rate and duration. */
  latencyRate: number;
  latencySeconds: number;
  /** d: flushes per side for the 1-aggregate and the 100-aggregate unit of work. */
  flushSingle: number;
  flushHundred: number;
  /** e: pending rows written before the relay starts. */
  backlogRows: number;
}

export const FULL: BenchSizes = {
  baselineJobs: 20_000,
  throughputEvents: 10_000,
  writers: 8,
  latencyRate: 200,
  latencySeconds: 20,
  flushSingle: 2_000,
  flushHundred: 100,
  backlogRows: 100_000,
};

export const QUICK: BenchSizes = {
  baselineJobs: 2_000,
  throughputEvents: 1_000,
  writers: 8,
  latencyRate: 200,
  latencySeconds: 3,
  flushSingle: 200,
  flushHundred: 10,
  backlogRows: 5_000,
};

/** Same worker concurrency for the raw BullMQ baseline and the outbox worker (the library default). */
export const WORKER_CONCURRENCY = 16;
/** Batch size of the baseline's addBulk; the relay's default batchSize is the same 500. */
export const ADD_BULK_BATCH = 500;
/** Pool of each Nest app: writers + worker concurrency + relay fit without waiting on the pool. */
export const POOL_MAX = 30;

/** What every phase gets: sizes, where the services are, and a way to print progress. */
export interface Bench {
  quick: boolean;
  sizes: BenchSizes;
  databaseUrl: string;
  redisUrl: string;
  /** Prefix of this run's queue names, so runs and concurrent test suites never share a queue. */
  runId: string;
  progress(message: string): void;
}

export interface Machine {
  cpu: string;
  cores: number;
  node: string;
  platform: string;
  memoryGB: number;
  /** 1-minute load average when the run started: above the core count, other work was competing. */
  loadAtStart: number;
}

export function machine(): Machine {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    node: process.version,
    platform: `${platform()} ${arch()}`,
    memoryGB: Math.round(totalmem() / 2 ** 30),
    loadAtStart: Math.round(loadavg()[0] * 100) / 100,
  };
}

/** Wall clock in epoch milliseconds with sub-millisecond resolution (Date.now() rounds to 1 ms). */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export async function waitUntil(
  what: string,
  condition: () => boolean | Promise<boolean>,
  timeoutMs: number,
  everyMs = 5,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(everyMs);
  }
}

/** Value at quantile `q` (0..1) of an ascending array, nearest rank. */
export function quantile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))];
}

export function median(values: readonly number[]): number {
  return quantile(
    [...values].sort((a, b) => a - b),
    0.5,
  );
}

export function rssMB(): number {
  return process.memoryUsage.rss() / 2 ** 20;
}

/**
 * heapUsed right after a full GC: the memory still referenced. Needs --expose-gc (bench.ts forks
 * phases with it); without it, plain heapUsed.
 */
export function liveHeapMB(): number {
  (globalThis as { gc?: () => void }).gc?.();
  return process.memoryUsage().heapUsed / 2 ** 20;
}

/** Calls `report` every `everyMs` until stopped; long phases use it to show they are alive. */
export function ticker(everyMs: number, report: () => void): () => void {
  const timer = setInterval(report, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

// ---- PostgreSQL ----------------------------------------------------------------------------

/** URL of database `name` on the server of `base`. */
export function databaseUrl(base: string, name: string): string {
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Runs statements on `url` with a throwaway ORM without entities, then closes it. */
export async function withSql<T>(
  url: string,
  fn: (execute: (sql: string, params?: unknown[]) => Promise<any[]>) => Promise<T>,
): Promise<T> {
  const orm = await MikroORM.init({
    clientUrl: url,
    entities: [],
    discovery: { warnWhenNoEntities: false },
    pool: { min: 0, max: 2 },
  });
  try {
    const connection = orm.em.getConnection();
    return await fn((sql, params = []) => connection.execute(sql, params));
  } finally {
    await orm.close(true);
  }
}

/** Drops and recreates database `name`, then creates the outbox tables and the bench's one table. */
export async function freshBenchDatabase(adminUrl: string, name: string): Promise<string> {
  await withSql(adminUrl, async (execute) => {
    await execute(`drop database if exists "${name}" with (force)`);
    await execute(`create database "${name}"`);
  });
  const url = databaseUrl(adminUrl, name);
  await withSql(url, async (execute) => {
    for (const statement of outboxSchemaSql()) await execute(statement);
    await execute(`create table bench_aggregate ("id" uuid primary key, "customer_id" text not null, "total_cents" int not null,
      "status" text not null, "placed_at" timestamptz not null)`);
  });
  return url;
}

export async function dropDatabase(adminUrl: string, name: string): Promise<void> {
  await withSql(adminUrl, (execute) => execute(`drop database if exists "${name}" with (force)`));
}

/** Every phase starts from empty tables, so no phase measures rows another one left behind. */
export async function emptyTables(url: string): Promise<void> {
  await withSql(url, (execute) => execute('truncate outbox_message, inbox_message, bench_aggregate'));
}

// ---- Redis / BullMQ ------------------------------------------------------------------------

/** Connection options for BullMQ queues and workers the bench owns (BullMQ closes them itself). */
export function redisConnection(redisUrl: string) {
  const url = new URL(redisUrl);
  return { host: url.hostname, port: Number(url.port || 6379), maxRetriesPerRequest: null };
}

/** Removes a queue: a raw BullMQ one by name, or the outbox's `bench` service queue under an outbox prefix. */
export async function obliterateQueue(redisUrl: string, name: string, prefix?: string): Promise<void> {
  const queue = prefix
    ? new Queue('bench', { prefix, connection: redisConnection(redisUrl) })
    : new Queue(name, { connection: redisConnection(redisUrl) });
  try {
    await queue.obliterate({ force: true });
  } finally {
    await queue.close();
  }
}

/** `promise`, or an error naming `what` once `ms` passed; the timer never keeps the process alive. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`Timed out after ${ms} ms waiting for ${what}`)), ms);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/** A promise with its resolve function, for "the last handler ran" signals. */
export function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve: () => void = () => undefined;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}
