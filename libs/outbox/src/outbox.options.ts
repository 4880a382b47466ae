import type { ModuleMetadata, Type } from '@nestjs/common';
import type { RedisOptions } from 'ioredis';
import { OutboxOptionsError } from './outbox.errors.js';

export const OUTBOX_OPTIONS = Symbol('nest-outbox:options');

/** Names of the tables the outbox uses; each must be a plain SQL identifier. */
export interface OutboxTableNames {
  /** PostgreSQL schema holding both tables; the connection's search_path when omitted. */
  schema?: string;
  /** Default `outbox_message`. */
  outbox?: string;
  /** Default `inbox_message`. */
  inbox?: string;
}

export interface OutboxRelayOptions {
  /** Run the relay (outbox → BullMQ) in this process. Default `true`. */
  enabled?: boolean;
  /** Safety-net poll interval in ms; commits that write rows wake the relay at once. Default 1000. */
  intervalMs?: number;
  /** Rows claimed, enqueued and marked per round trip. Default 500. */
  batchSize?: number;
  /** How long a claimed row stays reserved for this relay, in ms; after it another relay may take it. Default 30000. */
  leaseMs?: number;
  /** Longest pause between retries while Redis or PostgreSQL is unreachable, in ms. Default 30000. */
  maxBackoffMs?: number;
}

export interface OutboxWorkerOptions {
  /** Run the BullMQ worker (handlers) in this process. Default `true`. */
  enabled?: boolean;
  /** Jobs processed at once by this process. Default 16. */
  concurrency?: number;
  /** Delivery attempts before a message becomes a dead letter. Default 5. */
  attempts?: number;
  /**
   * Retry delay: `exponential` doubles `delayMs` per attempt. `jitter` (0-1) shortens each delay by
   * up to that fraction at random, so messages that failed together do not retry in lockstep.
   * Default exponential, 1000 ms, jitter 0.25.
   */
  backoff?: { type?: 'exponential' | 'fixed'; delayMs?: number; jitter?: number };
  /** How long a worker's claim on a job lasts without renewal, in ms (BullMQ lockDuration). Default 30000. */
  lockDurationMs?: number;
  /** How often workers look for jobs whose worker died, in ms (BullMQ stalledInterval). Default 30000. */
  stalledIntervalMs?: number;
  /** Times a job may lose its worker (crash, kill) before it becomes a dead letter. Default 10. */
  maxStalledCount?: number;
}

export interface OutboxRetentionOptions {
  /** Run the scheduled cleanup in this process. Default `true`. */
  enabled?: boolean;
  /** Delete dispatched outbox rows this long after dispatch (seconds). Default 604800 (7 days). */
  dispatchedAfterSeconds?: number;
  /** Delete a row as soon as it is dispatched instead of keeping it. Default `false`. */
  deleteOnDispatch?: boolean;
  /** Delete inbox rows this long after processing (seconds); must exceed the retry window. Default 1209600 (14 days). */
  inboxAfterSeconds?: number;
  /** How often the cleanup runs, in ms. Default 60000. */
  intervalMs?: number;
  /** Rows deleted per statement, so no statement holds locks for long. Default 1000. */
  batchSize?: number;
}

export interface OutboxModuleOptions {
  /** Redis connection: a `redis://` URL or ioredis options. Default `REDIS_URL` or `redis://127.0.0.1:6379`. */
  redis?: string | RedisOptions;
  /** BullMQ queue name. Default `outbox`. Letters, digits, `-`, `_`, `.`; no `:`. */
  queueName?: string;
  /** BullMQ key prefix. Default `bull`. */
  prefix?: string;
  relay?: OutboxRelayOptions;
  worker?: OutboxWorkerOptions;
  tables?: OutboxTableNames;
  /** Largest serialised event payload accepted, in bytes. Default 262144 (256 KiB). */
  maxPayloadBytes?: number;
  /** Completed BullMQ jobs are kept this long (seconds) so a re-dispatched message is recognised. Default 86400. */
  keepCompletedSeconds?: number;
  retention?: OutboxRetentionOptions;
  /** Longest wait at shutdown for in-flight enqueues and active handlers, in ms. Default 10000. */
  shutdownTimeoutMs?: number;
}

export interface OutboxOptionsFactory {
  createOutboxOptions(): OutboxModuleOptions | Promise<OutboxModuleOptions>;
}

export interface OutboxModuleAsyncOptions extends Pick<ModuleMetadata, 'imports'> {
  // Nest's own async-module signature; the factory's parameters are whatever `inject` lists.
  useFactory?: (...args: never[]) => OutboxModuleOptions | Promise<OutboxModuleOptions>;
  inject?: Array<string | symbol | Type<unknown>>;
  useClass?: Type<OutboxOptionsFactory>;
  useExisting?: Type<OutboxOptionsFactory>;
}

/** Options with every default filled in; what the stages read. */
export interface ResolvedOutboxOptions {
  redis: string | RedisOptions;
  queueName: string;
  prefix: string;
  relay: Required<OutboxRelayOptions>;
  worker: Required<Omit<OutboxWorkerOptions, 'backoff'>> & {
    backoff: { type: 'exponential' | 'fixed'; delayMs: number; jitter: number };
  };
  tables: { schema?: string; outbox: string; inbox: string };
  maxPayloadBytes: number;
  keepCompletedSeconds: number;
  retention: Required<OutboxRetentionOptions>;
  shutdownTimeoutMs: number;
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const QUEUE_NAME = /^[A-Za-z0-9_.-]{1,100}$/;

export function resolveOutboxOptions(options: OutboxModuleOptions = {}): ResolvedOutboxOptions {
  if (options === null || typeof options !== 'object') {
    throw new OutboxOptionsError(`nest-outbox options must be an object, got ${typeof options}.`);
  }
  const relay = options.relay ?? {};
  const worker = options.worker ?? {};
  const backoff = worker.backoff ?? {};
  const tables = options.tables ?? {};
  const retention = options.retention ?? {};
  const resolved: ResolvedOutboxOptions = {
    redis: options.redis ?? process.env.REDIS_URL ?? 'redis://127.0.0.1:6379',
    queueName: text('queueName', options.queueName, 'outbox', QUEUE_NAME, 'letters, digits, "-", "_" or "." (BullMQ forbids ":")'),
    prefix: text('prefix', options.prefix, 'bull', QUEUE_NAME, 'letters, digits, "-", "_" or "."'),
    relay: {
      enabled: flag('relay.enabled', relay.enabled, true),
      intervalMs: int('relay.intervalMs', relay.intervalMs, 1000, 10, 3_600_000),
      batchSize: int('relay.batchSize', relay.batchSize, 500, 1, 10_000),
      leaseMs: int('relay.leaseMs', relay.leaseMs, 30_000, 1000, 3_600_000),
      maxBackoffMs: int('relay.maxBackoffMs', relay.maxBackoffMs, 30_000, 100, 3_600_000),
    },
    worker: {
      enabled: flag('worker.enabled', worker.enabled, true),
      concurrency: int('worker.concurrency', worker.concurrency, 16, 1, 1000),
      attempts: int('worker.attempts', worker.attempts, 5, 1, 100),
      backoff: {
        type: oneOf('worker.backoff.type', backoff.type, 'exponential', ['exponential', 'fixed'] as const),
        delayMs: int('worker.backoff.delayMs', backoff.delayMs, 1000, 0, 3_600_000),
        jitter: fraction('worker.backoff.jitter', backoff.jitter, 0.25),
      },
      maxStalledCount: int('worker.maxStalledCount', worker.maxStalledCount, 10, 0, 1000),
      lockDurationMs: int('worker.lockDurationMs', worker.lockDurationMs, 30_000, 1000, 3_600_000),
      stalledIntervalMs: int('worker.stalledIntervalMs', worker.stalledIntervalMs, 30_000, 1000, 3_600_000),
    },
    tables: {
      schema: tables.schema === undefined ? undefined : text('tables.schema', tables.schema, '', IDENTIFIER, 'a SQL identifier: a letter or "_", then letters, digits or "_", at most 63'),
      outbox: text('tables.outbox', tables.outbox, 'outbox_message', IDENTIFIER, 'a SQL identifier: a letter or "_", then letters, digits or "_", at most 63'),
      inbox: text('tables.inbox', tables.inbox, 'inbox_message', IDENTIFIER, 'a SQL identifier: a letter or "_", then letters, digits or "_", at most 63'),
    },
    maxPayloadBytes: int('maxPayloadBytes', options.maxPayloadBytes, 262_144, 64, 64 * 1024 * 1024),
    keepCompletedSeconds: int('keepCompletedSeconds', options.keepCompletedSeconds, 86_400, 1, 365 * 86_400),
    retention: {
      enabled: flag('retention.enabled', retention.enabled, true),
      dispatchedAfterSeconds: int('retention.dispatchedAfterSeconds', retention.dispatchedAfterSeconds, 604_800, 0, 10 * 365 * 86_400),
      deleteOnDispatch: flag('retention.deleteOnDispatch', retention.deleteOnDispatch, false),
      inboxAfterSeconds: int('retention.inboxAfterSeconds', retention.inboxAfterSeconds, 1_209_600, 1, 10 * 365 * 86_400),
      intervalMs: int('retention.intervalMs', retention.intervalMs, 60_000, 100, 86_400_000),
      batchSize: int('retention.batchSize', retention.batchSize, 1000, 1, 100_000),
    },
    shutdownTimeoutMs: int('shutdownTimeoutMs', options.shutdownTimeoutMs, 10_000, 0, 600_000),
  };
  if (typeof resolved.redis !== 'string' && (resolved.redis === null || typeof resolved.redis !== 'object')) {
    throw new OutboxOptionsError(`Invalid nest-outbox option "redis": expected a redis:// URL or ioredis options, got ${show(resolved.redis)}.`);
  }
  if (typeof resolved.redis === 'string' && !/^rediss?:\/\//.test(resolved.redis)) {
    throw new OutboxOptionsError(`Invalid nest-outbox option "redis": expected a URL starting with redis:// or rediss://, got ${show(resolved.redis)}.`);
  }
  if (resolved.tables.outbox === resolved.tables.inbox) {
    throw new OutboxOptionsError(`Invalid nest-outbox options "tables.outbox" and "tables.inbox": they must differ, both are "${resolved.tables.outbox}".`);
  }
  if (resolved.keepCompletedSeconds * 1000 < resolved.relay.leaseMs) {
    throw new OutboxOptionsError(
      `Invalid nest-outbox option "keepCompletedSeconds": ${resolved.keepCompletedSeconds}s is shorter than relay.leaseMs (${resolved.relay.leaseMs} ms); ` +
        'completed jobs must outlive the lease so a re-dispatched message is recognised.',
    );
  }
  const retryWindowSeconds = Math.ceil(retryWindowMs(resolved.worker) / 1000);
  if (resolved.retention.inboxAfterSeconds <= retryWindowSeconds) {
    throw new OutboxOptionsError(
      `Invalid nest-outbox option "retention.inboxAfterSeconds": ${resolved.retention.inboxAfterSeconds}s is not longer than the retry window ` +
        `(${retryWindowSeconds}s for ${resolved.worker.attempts} attempts with ${resolved.worker.backoff.type} backoff of ${resolved.worker.backoff.delayMs} ms); ` +
        'an inbox row removed before the last retry would let a handler run twice.',
    );
  }
  return resolved;
}

/** Longest time from a job's first attempt to its last retry, from BullMQ's backoff rules. */
export function retryWindowMs(worker: ResolvedOutboxOptions['worker']): number {
  let total = 0;
  for (let retry = 1; retry < worker.attempts; retry++) {
    total += worker.backoff.type === 'fixed' ? worker.backoff.delayMs : worker.backoff.delayMs * 2 ** (retry - 1);
  }
  return total;
}

function int(name: string, value: unknown, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new OutboxOptionsError(`Invalid nest-outbox option "${name}": expected an integer from ${min} to ${max}, got ${show(value)}.`);
  }
  return value;
}

function fraction(name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > 1) {
    throw new OutboxOptionsError(`Invalid nest-outbox option "${name}": expected a number from 0 to 1, got ${show(value)}.`);
  }
  return value;
}

function flag(name: string, value: unknown, fallback: boolean): boolean {
  if (value === undefined) return fallback;
  if (typeof value !== 'boolean') {
    throw new OutboxOptionsError(`Invalid nest-outbox option "${name}": expected true or false, got ${show(value)}.`);
  }
  return value;
}

function text(name: string, value: unknown, fallback: string, pattern: RegExp, rule: string): string {
  if (value === undefined) return fallback;
  if (typeof value !== 'string' || !pattern.test(value)) {
    throw new OutboxOptionsError(`Invalid nest-outbox option "${name}": expected ${rule}, got ${show(value)}.`);
  }
  return value;
}

function oneOf<T extends string>(name: string, value: unknown, fallback: T, allowed: readonly T[]): T {
  if (value === undefined) return fallback;
  if (!allowed.includes(value as T)) {
    throw new OutboxOptionsError(`Invalid nest-outbox option "${name}": expected one of ${allowed.map((a) => `"${a}"`).join(', ')}, got ${show(value)}.`);
  }
  return value as T;
}

function show(value: unknown): string {
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'object' && value !== null) return 'an object';
  return String(value);
}
