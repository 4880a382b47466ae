import type { ModuleMetadata, Type } from '@nestjs/common';
import type { ClusterOptions, RedisOptions } from 'ioredis';

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
  /**
   * Claims whose enqueue failed for a reason other than an unreachable Redis (say, a job Redis
   * refuses) before the row stops being claimed and shows as stuck in `OutboxMonitor`. Default 10.
   */
  maxAttempts?: number;
  /**
   * The process that commits rows enqueues them itself, right after the commit, instead of waking
   * a relay to claim them: each row is written already leased to this process, and marked once
   * BullMQ took it. Rows with a delay, and keyed rows an ordered handler subscribes to, still go
   * through a relay, as does any row this process could not enqueue (its lease is given up, or
   * runs out if the process dies). A relay must run somewhere for those. Default `true`; `false`
   * leaves every row to a relay (an API process then spends no CPU on BullMQ).
   */
  dispatchOnCommit?: boolean;
}

export interface OutboxWorkerOptions {
  /** Run the BullMQ worker (handlers) in this process. Default `true`. */
  enabled?: boolean;
  /** Jobs processed at once by this process. Default 16. */
  concurrency?: number;
  /**
   * Delivery attempts before a message becomes a dead letter, for this service's queue whichever
   * service wrote the message (registered with the subscription; relays stamp it on the jobs).
   * Processes of one service should agree on it and on `backoff`: the last to register wins. Default 5.
   */
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
  /**
   * Handle every message of one key (aggregate, or `publish({ key })`) in commit order, per handler,
   * for every handler of this service. One handler can opt in alone with `@OutboxOrdered()`.
   * Default `false`: messages run in parallel.
   */
  ordered?: boolean;
  /**
   * How long a message that needs a handler this process lacks (a rolling deploy: an older build
   * took it) is handed back for another process before it becomes a dead letter naming the
   * missing handlers, in ms. Default 900000 (15 minutes).
   */
  waitForHandlersMs?: number;
  /**
   * Handler runs that become ready together may share one transaction, up to this many, run one
   * after another: one BEGIN and COMMIT (and one MikroORM transaction) for them all, which halves
   * the CPU a handler run costs when handlers are short database work. Each run keeps its own
   * EntityManager fork, inbox mark and message context. A run that fails, and the runs rolled back
   * with it, run again alone, so a batchmate never fails a run; handler side effects outside the
   * database (an HTTP call) can therefore happen once more, as with any retry. Ordered runs keep
   * their own transaction. Keep the default for handlers that wait on slow I/O: a batch
   * holds its connection and runs its members one by one. Default 1 (a transaction per run).
   */
  handlersPerTransaction?: number;
}

export interface OutboxRetentionOptions {
  /** Run the scheduled cleanup in this process. Default `true`. */
  enabled?: boolean;
  /** Delete dispatched outbox rows this long after dispatch (seconds). Default 604800 (7 days). */
  dispatchedAfterSeconds?: number;
  /** Delete a row as soon as it is dispatched instead of keeping it. Default `false`. */
  deleteOnDispatch?: boolean;
  /**
   * Delete inbox rows this long after processing (seconds), once their message can no longer run;
   * must exceed the retry window. Default 1209600 (14 days).
   */
  inboxAfterSeconds?: number;
  /** How often the cleanup runs, in ms. Default 60000. */
  intervalMs?: number;
  /** Rows deleted per statement, so no statement holds locks for long. Default 1000. */
  batchSize?: number;
}

/** A Redis Cluster: seed nodes, plus ioredis cluster options. */
export interface OutboxRedisCluster {
  cluster: Array<{ host: string; port: number }>;
  options?: ClusterOptions;
}

export interface OutboxModuleOptions {
  /**
   * This service's name: its queue (consumers), its subscription (the event types its handlers
   * handle) and the source of the messages it writes. Letters, digits, `-`, `_`, `.`. Required.
   */
  service: string;
  /**
   * This build's version, named in logs and dead letters so a rolling deploy can be followed.
   * Default `OUTBOX_VERSION`, else `npm_package_version`, else `unknown`.
   */
  version?: string;
  /**
   * Redis: a `redis://` URL, ioredis options, or `{ cluster: [...nodes] }` for a Redis Cluster (queues
   * then get a hash tag each). Default `REDIS_URL` or `redis://127.0.0.1:6379`.
   */
  redis?: string | RedisOptions | OutboxRedisCluster;
  /** Key prefix of every Redis key the outbox uses (BullMQ's too); may hold a `{hash tag}`. Default `outbox`. */
  prefix?: string;
  relay?: OutboxRelayOptions;
  worker?: OutboxWorkerOptions;
  tables?: OutboxTableNames;
  /**
   * Handlers this service removed on purpose: they are no longer expected for new messages. A
   * handler missing from a process (an older or newer build) is never dropped on its own.
   */
  retiredHandlers?: string[];
  /** Largest message (event JSON plus headers) accepted, in bytes. Default 262144 (256 KiB). */
  maxPayloadBytes?: number;
  /** Completed BullMQ jobs are kept this long (seconds) so a re-dispatched message is recognised. Default 86400. */
  keepCompletedSeconds?: number;
  retention?: OutboxRetentionOptions;
  /** Longest wait at shutdown for in-flight enqueues and active handlers, in ms. Default 10000. */
  shutdownTimeoutMs?: number;
  /**
   * When the app imports @nestjs/cqrs's CqrsModule: route its EventBus through the outbox. Inside a
   * unit of work (a transaction or request context) `publish`/`publishAll` write outbox rows in it;
   * outside one they throw. `@EventsHandler` classes then run only through the outbox, and sagas see
   * each event once its transaction committed. Default `true`; `false` leaves the EventBus in memory,
   * as cqrs made it: what it publishes never reaches the outbox.
   */
  eventBus?: boolean;
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

/** Table names with defaults filled in. */
export interface ResolvedTableNames {
  schema?: string;
  outbox: string;
  inbox: string;
}

/** Options with every default filled in; what the stages read. Not part of the public API. */
export interface ResolvedOutboxOptions {
  service: string;
  version: string;
  redis: string | RedisOptions | OutboxRedisCluster;
  prefix: string;
  retiredHandlers: string[];
  relay: Required<OutboxRelayOptions>;
  worker: Required<Omit<OutboxWorkerOptions, 'backoff'>> & {
    backoff: { type: 'exponential' | 'fixed'; delayMs: number; jitter: number };
  };
  tables: ResolvedTableNames;
  maxPayloadBytes: number;
  keepCompletedSeconds: number;
  retention: Required<OutboxRetentionOptions>;
  shutdownTimeoutMs: number;
  eventBus: boolean;
}
