import { readdirSync, readFileSync } from 'node:fs';

/**
 * Reads Linux /proc: CPU time and memory of one process, the children of a process, and process
 * titles. Everything returns `undefined` / empty for a process that is gone (or off Linux), so a
 * measurement never fails because a process exited between two reads.
 */

/** USER_HZ: /proc/<pid>/stat counts CPU time in these ticks (100 on every Linux the bench runs on). */
export const TICKS_PER_SECOND = 100;

export interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime, in ms. */
  cpuMs: number;
}

export function readStat(pid: number): ProcStat | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return undefined;
  }
  // The command name (field 2) is in parentheses and may hold spaces; the fields after it are plain.
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // Counted after the name: state 0, ppid 1, ..., utime 11, stime 12 (fields 14 and 15 of proc(5)).
  return {
    pid,
    ppid: Number(fields[1]),
    cpuMs: ((Number(fields[11]) + Number(fields[12])) * 1000) / TICKS_PER_SECOND,
  };
}

/** Every process id alive now. */
export function allPids(): number[] {
  try {
    return readdirSync('/proc')
      .filter((name) => /^\d+$/.test(name))
      .map(Number);
  } catch {
    return [];
  }
}

/** Children of `parent` alive now. */
export function childrenOf(parent: number): number[] {
  return allPids().filter((pid) => readStat(pid)?.ppid === parent);
}

/** The process title (PostgreSQL rewrites it to say which database a backend serves). */
export function titleOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
  } catch {
    return '';
  }
}

export interface Memory {
  /** Resident set size now. */
  rssMB: number;
  /** Highest resident set size the process ever had (VmHWM): a true peak, no sampling needed. */
  peakMB: number;
}

export function memoryOf(pid: number): Memory | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kB = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
  return { rssMB: kB('VmRSS') / 1024, peakMB: kB('VmHWM') / 1024 };
}

/** Busy and total CPU ticks of the whole machine (all cores), from /proc/stat. */
export function machineTicks(): { busy: number; total: number } {
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
