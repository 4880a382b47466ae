import { readdirSync, readFileSync } from 'node:fs';

/**
 * CPU seconds spent by this process, by the PostgreSQL and Redis servers, and by the whole
 * machine, read from /proc (Linux; zeros elsewhere). On a small machine everything shares the same
 * cores, so this shows which process a phase's time went to. Server figures are machine-wide:
 * other clients of the same servers count too.
 */
export interface CpuSplit {
  nodeSeconds: number;
  postgresSeconds: number;
  redisSeconds: number;
  /** Share of all cores busy over the window, 0..1. */
  machineBusy: number;
}

interface Reading {
  at: number;
  node: number;
  servers: { postgres: number; redis: number };
  machine: { busy: number; total: number };
}

const TICKS = 100; // USER_HZ on Linux

export function readCpu(): Reading {
  const usage = process.cpuUsage();
  return {
    at: performance.now(),
    node: (usage.user + usage.system) / 1e6,
    servers: serverSeconds(),
    machine: machineTicks(),
  };
}

export function cpuSince(start: Reading): CpuSplit {
  const end = readCpu();
  const total = end.machine.total - start.machine.total;
  return {
    nodeSeconds: end.node - start.node,
    postgresSeconds: end.servers.postgres - start.servers.postgres,
    redisSeconds: end.servers.redis - start.servers.redis,
    machineBusy: total > 0 ? (end.machine.busy - start.machine.busy) / total : 0,
  };
}

/** utime + stime of every postgres and redis-server process alive now (pool connections live through a phase). */
function serverSeconds(): { postgres: number; redis: number } {
  const out = { postgres: 0, redis: 0 };
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((name) => /^\d+$/.test(name));
  } catch {
    return out;
  }
  for (const pid of pids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const kind = name === 'postgres' ? 'postgres' : name === 'redis-server' ? 'redis' : undefined;
    if (!kind) continue;
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[11..12] are utime, stime (fields 14, 15 of proc(5), counted after the name).
    out[kind] += (Number(fields[11]) + Number(fields[12])) / TICKS;
  }
  return out;
}

function machineTicks(): { busy: number; total: number } {
  try {
    const [, ...values] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/);
    const ticks = values.map(Number);
    const total = ticks.reduce((a, b) => a + b, 0);
    const idle = ticks[3] + (ticks[4] ?? 0); // idle + iowait
    return { busy: total - idle, total };
  } catch {
    return { busy: 0, total: 0 };
  }
}
