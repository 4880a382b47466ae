import { arch, cpus, loadavg, platform, totalmem } from 'node:os';
import type { ServerPids } from './measure/servers.js';

/** Sizes of every phase; `--quick` shrinks them so the whole run stays well under a minute. */
export interface BenchSizes {
  /** Raw BullMQ: jobs per measurement. */
  baselineJobs: number;
  /** Concurrent writers (each its own EntityManager fork and transaction), one event per transaction. */
  writers: number;
  /** End-to-end runs (outbox, naive dual write, scale): events per run. */
  events: number;
  /** Events written and handled before a measured window (connections opened, code compiled). */
  warmupEvents: number;
  /** Steady open-loop rate and how long it runs. */
  latencyRate: number;
  latencySeconds: number;
  /** Flush overhead: flushes per side for the 1-aggregate and the 100-aggregate unit of work. */
  flushSingle: number;
  flushHundred: number;
  /** Pending rows for the drains (relay alone, through the handlers) and jobs for the consume ceiling. */
  backlogRows: number;
}

export const FULL: BenchSizes = {
  baselineJobs: 20_000,
  writers: 8,
  events: 10_000,
  warmupEvents: 500,
  latencyRate: 200,
  latencySeconds: 30,
  flushSingle: 2_000,
  flushHundred: 100,
  backlogRows: 100_000,
};

export const QUICK: BenchSizes = {
  baselineJobs: 1_000,
  writers: 8,
  events: 300,
  // Quick runs check shape, not speed: no warm-up.
  warmupEvents: 0,
  latencyRate: 200,
  latencySeconds: 1,
  flushSingle: 100,
  flushHundred: 5,
  backlogRows: 1_500,
};

/** Same worker concurrency for every consumer the bench runs (the library default). */
export const WORKER_CONCURRENCY = 16;
/** Batch size of the raw BullMQ baseline's addBulk; the relay's default batchSize is the same 500. */
export const ADD_BULK_BATCH = 500;

/** What every phase gets: sizes, where the services are, and a way to print progress. */
export interface Bench {
  quick: boolean;
  sizes: BenchSizes;
  databaseUrl: string;
  /** This run's database name (its backends are the run's share of PostgreSQL's CPU). */
  database: string;
  redisUrl: string;
  /** BullMQ key prefix of this phase of this run: its queues, wake channel and jobs meet no other phase's or run's. */
  prefix: string;
  servers: ServerPids;
  /** Where results and profiles go. */
  outDir: string;
  /** Record V8 CPU profiles where a phase offers one (`--profile`). */
  profile: boolean;
  /** Extra Node flags for every node process (`--node-args`): runtime levers, e.g. V8 heap sizing. */
  nodeArgs: string[];
  progress(message: string): void;
}

export interface Machine {
  cpu: string;
  cores: number;
  node: string;
  platform: string;
  memoryGB: number;
  /** 1-, 5- and 15-minute load averages when the run started: above the core count, other work was competing. */
  loadAtStart: number[];
}

export function loadAverage(): number[] {
  return loadavg().map((v) => Math.round(v * 100) / 100);
}

export function machine(): Machine {
  const list = cpus();
  return {
    cpu: list[0]?.model.trim() ?? 'unknown',
    cores: list.length,
    node: process.version,
    platform: `${platform()} ${arch()}`,
    memoryGB: Math.round(totalmem() / 2 ** 30),
    loadAtStart: loadAverage(),
  };
}

/**
 * Milliseconds on CLOCK_MONOTONIC (sub-ms). The clock is the machine's, not the process's, so a
 * commit time taken in the API process and a handler start taken in the outbox process compare
 * directly; wall-clock time would not (NTP may slew it between the two reads).
 */
export function now(): number {
  return Number(process.hrtime.bigint()) / 1e6;
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export function rssMB(): number {
  return process.memoryUsage.rss() / 2 ** 20;
}

/**
 * heapUsed right after a full GC: the memory still referenced. Needs --expose-gc (bench processes
 * are started with it); without it, plain heapUsed.
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
export function signal<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}
