import type { Distribution } from '../measure/stats.js';

/**
 * What the phase process (parent) and a bench node process (child) say to each other over IPC.
 * A node is one OS process in the shape of a deployment: an API process that writes, an outbox
 * process that relays and handles, or a baseline's producer or worker.
 */

export type NodeSpec =
  /**
   * A Nest app with MikroORM + OutboxModule; relay and worker as given (both off: an API process).
   * `service` names the service it is a process of; `handlers: false` makes it a service with no
   * handlers of its own (a producer whose events only other services consume); `ordered` makes its
   * handler keep order per key (`worker.ordered`).
   */
  | {
      kind: 'outbox';
      relay: boolean;
      worker: boolean;
      poolMax: number;
      service?: string;
      handlers?: boolean;
      ordered?: boolean;
      handlersPerTransaction?: number;
      dispatchOnCommit?: boolean;
    }
  /** Naive dual write, producer: plain MikroORM, commit, then `queue.add` per event. */
  | { kind: 'naive-api'; poolMax: number }
  /** Naive dual write, consumer: a BullMQ worker running the handler in a transaction with an inbox mark. */
  | { kind: 'naive-worker'; poolMax: number }
  /** Consume ceiling: a BullMQ worker doing one plain `pg` transaction that inserts one row per job. */
  | { kind: 'ceiling'; poolMax: number };

export interface NodeConfig {
  /** Names the process in progress lines and errors. */
  label: string;
  spec: NodeSpec;
  databaseUrl: string;
  redisUrl: string;
  prefix: string;
}

/**
 * How a writer node writes: N writers back to back (closed loop), or a steady schedule (open loop).
 * `keys`: outbox writers publish each event with an ordering key out of this many, taken round
 * robin (write n gets key n mod keys), instead of the aggregate's own key (one per aggregate).
 */
export type Load = (
  { shape: 'closed'; writers: number; events: number } | { shape: 'open'; rate: number; events: number }
) & {
  keys?: number;
};

export interface WriteReport {
  events: number;
  /** now() when the first and the last commit returned. */
  firstCommitAt: number;
  lastCommitAt: number;
  /** Aggregate id → now() when its commit returned; only when asked (it costs memory per event). */
  commits?: Array<[string, number]>;
  /** Flush (begin + inserts + commit) durations, ms. */
  flush: Distribution;
  /** Open loop: how late each commit started against its schedule, ms (shows the load generator kept up). */
  startLag?: Distribution;
}

export interface HandledReport {
  /** Handler transactions committed since the last `track`. */
  count: number;
  /** now() at the last of them. */
  lastAt: number;
  /** Aggregate id → now() when its handler started; only when tracking asked for them. */
  starts?: Array<[string, number]>;
}

export interface Commands {
  write: { args: { load: Load; record: boolean }; result: WriteReport };
  /** Starts counting handled messages from zero; `recordStarts` keeps each handler's start time. */
  track: { args: { recordStarts: boolean }; result: void };
  handled: { args: { starts: boolean }; result: HandledReport };
  /** Resolves once this process's relay has dispatched `atLeast` rows; `at` is when it saw so (5 ms resolution). */
  relayDispatched: { args: { atLeast: number }; result: { count: number; at: number } };
  /** Consumers created stopped (the ceiling) start here. */
  start: { args: void; result: void };
  /** Statements and Redis commands this process sent since it started, by kind (call-counter.ts). */
  calls: { args: void; result: Record<string, number> };
  /** Live heap after a full GC, MB. */
  heap: { args: void; result: number };
  profileStart: { args: { samplingIntervalUs: number }; result: void };
  profileStop: { args: { file: string }; result: void };
  close: { args: void; result: void };
}
export type Command = keyof Commands;

export type ToNode = { type: 'call'; id: number; command: Command; args: unknown };
export type FromNode =
  | { type: 'ready'; bootedAt: number; liveHeapMB: number }
  | { type: 'progress'; count: number; lastAt: number }
  | { type: 'reply'; id: number; value?: unknown; error?: string };
