import { TICKS_PER_SECOND, childrenOf, machineTicks, readStat, titleOf } from './proc.js';

/**
 * CPU time by process over a measured window, from /proc: each node process of the run (by role),
 * every PostgreSQL server process (the postmaster and its children: backends and background
 * workers) and redis-server. PostgreSQL names the database a backend serves in its title, so
 * backends of other databases — other users of a shared server — are counted apart rather than
 * charged to the run. Redis is one process for everyone: its figure includes other clients.
 */

export interface CpuSources {
  /** Node processes by role ("api", "outbox", ...); the pids of one role are summed. */
  node: Record<string, number[]>;
  postmasterPid: number;
  /** This run's databases (the run's, and consuming services' own): their backends are the run's. */
  databases: string[];
  redisPid: number;
}

type PostgresKind = 'run' | 'background' | 'other';

interface Snapshot {
  at: number;
  node: Map<number, number>;
  postgres: Map<number, { ms: number; kind: PostgresKind }>;
  redis: number;
  machine: { busy: number; total: number };
}

export interface ProcessCpu {
  cpuMs: number;
  msPerEvent: number;
  /** Share of one core over the window (1 = one core fully busy). */
  core: number;
}

export interface CpuReport {
  windowMs: number;
  events: number;
  /** By role (node processes), then `postgres` (this run's backends + background workers) and `redis`. */
  byProcess: Record<string, ProcessCpu>;
  /** Sum of byProcess. */
  total: ProcessCpu;
  /** Of `postgres`: background workers (WAL writer, checkpointer, ...), which serve every database. */
  postgresBackgroundMs: number;
  /** Backends of other databases over the window: other users of the shared server, not in `postgres`. */
  postgresOtherDatabasesMs: number;
  /** Share of all cores busy over the window, 0..1, whoever used them. */
  machineBusy: number;
  /**
   * Cores' worth of CPU used by everything else over the window — other users' processes, the
   * bench's coordinator, kernel time not charged to a process: how much the run competed with.
   */
  othersCores: number;
}

/** The database a backend serves, from titles like "postgres: 15/main: user db 127.0.0.1(5432) idle". */
const BACKEND_TITLE = /^postgres: (?:\S+: )?\S+ (\S+) (?:\S+\(\d+\)|\[local\])/;

function postgresKind(pid: number, databases: readonly string[]): PostgresKind {
  const backendOf = BACKEND_TITLE.exec(titleOf(pid))?.[1];
  if (backendOf === undefined) return 'background';
  return databases.includes(backendOf) ? 'run' : 'other';
}

export function cpuSnapshot(sources: CpuSources): Snapshot {
  const node = new Map<number, number>();
  for (const pid of Object.values(sources.node).flat()) node.set(pid, readStat(pid)?.cpuMs ?? 0);
  const postgres = new Map<number, { ms: number; kind: PostgresKind }>();
  const postmaster = readStat(sources.postmasterPid);
  if (postmaster) postgres.set(sources.postmasterPid, { ms: postmaster.cpuMs, kind: 'background' });
  for (const pid of childrenOf(sources.postmasterPid)) {
    const stat = readStat(pid);
    if (stat) postgres.set(pid, { ms: stat.cpuMs, kind: postgresKind(pid, sources.databases) });
  }
  return {
    at: performance.now(),
    node,
    postgres,
    redis: readStat(sources.redisPid)?.cpuMs ?? 0,
    machine: machineTicks(),
  };
}

/**
 * CPU between two snapshots, per event. A process that appeared in between is charged all its
 * CPU (it started inside the window); one that exited in between is lost — the run's pools keep
 * their connections for a whole window, so only other users' short-lived backends fall there.
 */
export function cpuBetween(start: Snapshot, end: Snapshot, sources: CpuSources, events: number): CpuReport {
  const windowMs = end.at - start.at;
  const figure = (cpuMs: number): ProcessCpu => ({
    cpuMs,
    msPerEvent: events > 0 ? cpuMs / events : NaN,
    core: windowMs > 0 ? cpuMs / windowMs : NaN,
  });
  const byProcess: Record<string, ProcessCpu> = {};
  for (const [role, pids] of Object.entries(sources.node)) {
    byProcess[role] = figure(pids.reduce((sum, pid) => sum + (end.node.get(pid) ?? 0) - (start.node.get(pid) ?? 0), 0));
  }
  const postgres = { run: 0, background: 0, other: 0 };
  for (const [pid, { ms, kind }] of end.postgres) postgres[kind] += ms - (start.postgres.get(pid)?.ms ?? 0);
  byProcess.postgres = figure(postgres.run + postgres.background);
  byProcess.redis = figure(end.redis - start.redis);
  const busy = end.machine.busy - start.machine.busy;
  const total = end.machine.total - start.machine.total;
  const ours = Object.values(byProcess).reduce((sum, p) => sum + p.cpuMs, 0);
  const busyMs = (busy * 1000) / TICKS_PER_SECOND;
  return {
    windowMs,
    events,
    byProcess,
    total: figure(ours),
    postgresBackgroundMs: postgres.background,
    postgresOtherDatabasesMs: postgres.other,
    machineBusy: total > 0 ? busy / total : NaN,
    othersCores: windowMs > 0 ? Math.max(0, busyMs - ours) / windowMs : NaN,
  };
}

/** Measures `fn` as one window; `events` is known only once it ran. */
export async function measureCpu<T extends { events: number }>(
  sources: CpuSources,
  fn: () => Promise<T>,
): Promise<T & { cpu: CpuReport }> {
  const start = cpuSnapshot(sources);
  const result = await fn();
  const end = cpuSnapshot(sources);
  return { ...result, cpu: cpuBetween(start, end, sources, result.events) };
}
