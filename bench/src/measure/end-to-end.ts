import { join } from 'node:path';
import { databaseUrl } from '../../../test/support/database.js';
import { analyzeTables, relayBatches } from '../bench-db.js';
import { now, ticker, type Bench } from '../harness.js';
import { allHandled } from '../nodes/node-process.js';
import type { Load } from '../nodes/protocol.js';
import type { Topology } from '../nodes/topology.js';
import { summariseProfile, type ProfileSummary } from '../profile-top.js';
import { callsPerEvent, readCalls, type Calls } from './calls.js';
import { cpuBetween, cpuSnapshot, type CpuReport, type CpuSources } from './cpu.js';
import { RedisCommandCounter, type RedisCommands } from './redis-commands.js';
import { latencySegments, type LatencySegments } from './latency-segments.js';
import { WalFlushCounter } from './wal-flushes.js';
import { distribution, type Distribution } from './stats.js';

/** One measured window: a load written by the topology's writer until every handler committed. */
export interface EndToEndRun {
  topology: string;
  load: Load;
  events: number;
  /** First commit → last handler transaction committed (of every consuming service). */
  seconds: number;
  eventsPerSecond: number;
  /** How fast the writers committed. */
  committedPerSecond: number;
  /** Commit returned (writer) → handler started (consumer), ms; recorded runs only. */
  latency?: Distribution;
  /** Where that latency goes, cut where BullMQ stamps each job; recorded runs with one consuming service. */
  segments?: LatencySegments;
  /** Writers' flush (begin + inserts + commit), ms. */
  flush: Distribution;
  /** Open loop: lateness of each commit's start against its schedule, ms. */
  startLag?: Distribution;
  cpu: CpuReport;
  /** Per event, by role: statements sent to PostgreSQL and commands to Redis (each process's own count). */
  calls: Calls;
  /** Redis commands per event as the server counted them: every client of the server, so noisy on a shared one. */
  redis: RedisCommands;
  /** PostgreSQL WAL flushes per event, server-wide (see WalFlushCounter). */
  walFlushesPerEvent: number;
  /** Outbox topologies: relay statements that marked rows, and rows per statement. */
  relay?: { batches: number; rowsPerBatch: number };
  /** Handled per consumer process (shows how the work spread over several). */
  handledBy: Record<string, number>;
  /** `--profile`: per role, where its CPU went during this window. */
  profiles?: Record<string, ProfileSummary & { file: string }>;
}

export interface RunOptions {
  /** Keep commit and handler-start times to compute latency (memory per event, so not for big runs). */
  record: boolean;
  /** Count the relay's batches (outbox topologies). */
  relay: boolean;
  /** Record a V8 CPU profile of every process of the topology, named `<profile>-<role>.cpuprofile`. */
  profile?: string;
}

/** `databases`: the run's own besides `bench.database` (consuming services' databases). */
export function cpuSources(
  bench: Bench,
  roles: Record<string, Array<{ pid: number }>>,
  databases: readonly string[] = [],
): CpuSources {
  return {
    node: Object.fromEntries(Object.entries(roles).map(([role, nodes]) => [role, nodes.map((n) => n.pid)])),
    postmasterPid: bench.servers.postmasterPid,
    databases: [bench.database, ...databases],
    redisPid: bench.servers.redisPid,
  };
}

/** Writes `load` and waits for every handler; CPU, Redis commands and (optionally) profiles cover exactly that window. */
export async function measureEndToEnd(
  bench: Bench,
  topology: Topology,
  load: Load,
  options: RunOptions,
): Promise<EndToEndRun> {
  const { writer, consumers } = topology;
  await Promise.all(consumers.map((node) => node.track(options.record)));
  const since = new Date();
  const sources = cpuSources(bench, topology.roles, topology.databases);
  // Each event is handled once per consuming service.
  const deliveries = load.events * topology.services;
  const redis = new RedisCommandCounter(bench.redisUrl);
  const wal = new WalFlushCounter(bench.databaseUrl);
  const profiled = options.profile
    ? Object.entries(topology.roles).flatMap(([role, nodes]) =>
        nodes.map((node, i) => ({ role: nodes.length > 1 ? `${role}-${i + 1}` : role, node })),
      )
    : [];
  let handled = 0;
  const stop = ticker(5000, () => bench.progress(`  ${topology.name}: handled ${handled}/${deliveries}`));
  try {
    const redisStart = await redis.read();
    const walStart = await wal.read();
    const callsStart = await readCalls(topology.roles);
    await Promise.all(profiled.map(({ node }) => node.call('profileStart', { samplingIntervalUs: 500 })));
    const cpuStart = cpuSnapshot(sources);
    const written = writer.call('write', { load, record: options.record });
    written.catch(() => undefined); // awaited below; a failed write must not go unhandled meanwhile
    const lastAt = await allHandled(consumers, deliveries, 600_000, (count) => (handled = count));
    const report = await written;
    const cpuEnd = cpuSnapshot(sources);
    const redisEnd = await redis.read();
    const walEnd = await wal.read();
    const callsEnd = await readCalls(topology.roles);
    const profiles: EndToEndRun['profiles'] = {};
    for (const { role, node } of profiled) {
      const file = join(bench.outDir, `${options.profile}-${role}.cpuprofile`);
      await node.call('profileStop', { file });
      profiles[role] = { file, ...summariseProfile(file, 15, load.events) };
    }

    let latency: Distribution | undefined;
    let segments: LatencySegments | undefined;
    if (options.record) {
      const committedAt = new Map(report.commits);
      const startedAt = new Map<string, number>();
      const latencies: number[] = [];
      for (const node of consumers) {
        const { starts = [] } = await node.call('handled', { starts: true });
        for (const [id, at] of starts) {
          const commit = committedAt.get(id);
          if (commit === undefined) continue;
          latencies.push(at - commit);
          startedAt.set(id, at);
        }
      }
      if (latencies.length !== deliveries)
        throw new Error(
          `Matched ${latencies.length} handler starts to ${deliveries} deliveries of ${load.events} commits`,
        );
      latency = distribution(latencies);
      if (topology.services === 1)
        segments = await latencySegments(bench.redisUrl, bench.prefix, committedAt, startedAt);
    }
    const seconds = (lastAt - report.firstCommitAt) / 1000;
    const batches = options.relay ? await relayBatches(bench.databaseUrl, since) : undefined;
    return {
      topology: topology.name,
      load,
      events: load.events,
      seconds,
      eventsPerSecond: load.events / seconds,
      committedPerSecond: load.events / Math.max(0.001, (report.lastCommitAt - report.firstCommitAt) / 1000),
      ...(latency ? { latency } : {}),
      ...(segments ? { segments } : {}),
      flush: report.flush,
      ...(report.startLag ? { startLag: report.startLag } : {}),
      cpu: cpuBetween(cpuStart, cpuEnd, sources, load.events),
      calls: callsPerEvent(callsStart, callsEnd, load.events),
      redis: RedisCommandCounter.between(redisStart, redisEnd, load.events),
      walFlushesPerEvent: (walEnd - walStart) / load.events,
      ...(batches
        ? { relay: { batches: batches.batches, rowsPerBatch: batches.rows / Math.max(1, batches.batches) } }
        : {}),
      handledBy: Object.fromEntries(consumers.map((node) => [node.label, node.handled.count])),
      ...(profiled.length > 0 ? { profiles } : {}),
    };
  } finally {
    stop();
    redis.close();
    await wal.close();
  }
}

/**
 * Writes and handles `events` events, unmeasured: pools open their connections, the JIT compiles
 * the hot paths, BullMQ's scripts are loaded — none of that is part of the steady state measured next.
 * Then every table is analyzed (`analyzeTables`), as autovacuum does within a minute of traffic.
 * `keys`: written with ordering keys, as the measured load will be.
 */
export async function warmUp(bench: Bench, topology: Topology, keys?: number): Promise<void> {
  const events = bench.sizes.warmupEvents;
  if (events === 0) return;
  await Promise.all(topology.consumers.map((node) => node.track(false)));
  const started = now();
  await topology.writer.call('write', {
    load: { shape: 'closed', writers: bench.sizes.writers, events, ...(keys ? { keys } : {}) },
    record: false,
  });
  await allHandled(topology.consumers, events * topology.services, 120_000);
  const databases = (topology.databases ?? []).map((name) => databaseUrl(name, bench.databaseUrl));
  for (const url of [bench.databaseUrl, ...databases]) await analyzeTables(url);
  bench.progress(`  ${topology.name}: warmed up with ${events} events in ${((now() - started) / 1000).toFixed(1)} s`);
}
