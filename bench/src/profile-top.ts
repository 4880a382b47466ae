import { readFileSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';

/**
 * Where the CPU of a V8 .cpuprofile went (from `node --cpu-prof` or the bench's --profile): top
 * self-time frames, self time by package, inclusive time by package (a package's own code plus
 * everything it called synchronously), and inclusive time of nest-outbox's functions — which
 * library code path asked for the work. Async continuations start fresh stacks, so inclusive time
 * covers synchronous work only: time spent parsing a PostgreSQL reply is `pg`'s, whoever awaits it.
 * Usage: node dist/bench/src/profile-top.js <file.cpuprofile> [count] [events]
 */

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface Frame {
  name: string;
  /** Package or area: a node_modules package, nest-outbox, node, or a V8 pseudo frame like (garbage collector). */
  where: string;
  location: string;
  selfMs: number;
  /** Share of the busy (non-idle) time. */
  percent: number;
  /** For native and node-internal frames: the nearest package up the stack, which says who asked. */
  calledFrom: string;
}

export interface Share {
  name: string;
  ms: number;
  percent: number;
  /** ms per event, when the profile's event count is known. */
  msPerEvent?: number;
}

export interface ProfileSummary {
  busyMs: number;
  idleMs: number;
  /** Events handled in the profiled window (0 when unknown). */
  events: number;
  busyMsPerEvent?: number;
  frames: Frame[];
  /** Self time summed per package / area, busiest first. */
  areas: Share[];
  /** Time of samples with the package anywhere on the stack (its code and what it called). */
  inclusive: Share[];
  /** Inclusive time of nest-outbox functions: the library code paths that asked for the work. */
  library: Share[];
}

export function summariseProfile(file: string, count = 10, events = 0): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((node) => [node.id, node]));
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const stackOf = (id: number): ProfileNode[] => {
    const stack: ProfileNode[] = [];
    for (let at: number | undefined = id; at !== undefined; at = parentOf.get(at)) stack.push(byId.get(at)!);
    return stack;
  };
  // Walks up from a sample to the first frame of a package (not V8, not node internals).
  const packageAbove = (stack: ProfileNode[]): string => {
    for (const { callFrame } of stack) {
      const where = areaOf(callFrame.functionName, callFrame.url);
      if (callFrame.url && where !== 'node' && where !== INSTRUMENTATION) return where;
    }
    return '(no package)';
  };
  // Each sample is charged the time until the next one (timeDeltas[i + 1]), as DevTools does.
  const selfUs = new Map<number, number>();
  for (let i = 0; i < profile.samples.length; i++) {
    const delta = profile.timeDeltas[i + 1] ?? 0;
    selfUs.set(profile.samples[i], (selfUs.get(profile.samples[i]) ?? 0) + Math.max(0, delta));
  }
  const frames = new Map<string, Omit<Frame, 'percent' | 'calledFrom'> & { callers: Map<string, number> }>();
  const areas = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const library = new Map<string, number>();
  let idleMs = 0;
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const ms = us / 1000;
    if (functionName === '(idle)') {
      idleMs += ms;
      continue;
    }
    const stack = stackOf(id);
    const where = areaOf(functionName, url);
    const location = url ? `${shortPath(url)}:${lineNumber + 1}` : '';
    const key = `${functionName}|${location}`;
    const frame = frames.get(key) ?? {
      name: functionName || '(anonymous)',
      where,
      location,
      selfMs: 0,
      callers: new Map(),
    };
    frame.selfMs += ms;
    const caller = packageAbove(stack);
    frame.callers.set(caller, (frame.callers.get(caller) ?? 0) + ms);
    frames.set(key, frame);
    areas.set(where, (areas.get(where) ?? 0) + ms);
    const packages = new Set<string>();
    const functions = new Set<string>();
    for (const { callFrame } of stack) {
      const area = areaOf(callFrame.functionName, callFrame.url);
      if (callFrame.url && area !== 'node' && area !== INSTRUMENTATION) packages.add(area);
      if (area === 'nest-outbox')
        functions.add(
          `${callFrame.functionName || '(anonymous)'} ${shortPath(callFrame.url).replace(/^.*\/(src|dist)\//, '')}`,
        );
    }
    for (const p of packages) inclusive.set(p, (inclusive.get(p) ?? 0) + ms);
    for (const f of functions) library.set(f, (library.get(f) ?? 0) + ms);
  }
  const busyMs = [...areas.values()].reduce((a, b) => a + b, 0);
  const share = (entries: Map<string, number>, top: number): Share[] =>
    [...entries]
      .sort((a, b) => b[1] - a[1])
      .slice(0, top)
      .map(([name, ms]) => ({
        name,
        ms,
        percent: (100 * ms) / busyMs,
        ...(events > 0 ? { msPerEvent: ms / events } : {}),
      }));
  return {
    busyMs,
    idleMs,
    events,
    ...(events > 0 ? { busyMsPerEvent: busyMs / events } : {}),
    frames: [...frames.values()]
      .sort((a, b) => b.selfMs - a.selfMs)
      .slice(0, count)
      .map(({ callers, ...frame }) => ({
        ...frame,
        percent: (100 * frame.selfMs) / busyMs,
        calledFrom: describeCallers(callers, frame.selfMs),
      })),
    areas: share(areas, 12),
    inclusive: share(inclusive, 12),
    library: share(library, count),
  };
}

/** "pg 81 %, ioredis 19 %": who the time of one frame was spent for, biggest first. */
function describeCallers(callers: Map<string, number>, total: number): string {
  return [...callers]
    .filter(([, ms]) => ms >= total / 100)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([where, ms]) => `${where} ${Math.round((100 * ms) / total)} %`)
    .join(', ');
}

export function formatSummary(summary: ProfileSummary): string {
  const perEvent = (s: { msPerEvent?: number }) =>
    s.msPerEvent === undefined ? '' : ` ${s.msPerEvent.toFixed(3).padStart(7)} ms/event`;
  const lines = [
    `busy ${(summary.busyMs / 1000).toFixed(2)} s, idle ${(summary.idleMs / 1000).toFixed(2)} s` +
      (summary.busyMsPerEvent === undefined
        ? ''
        : `; ${summary.events} events, ${summary.busyMsPerEvent.toFixed(3)} ms of CPU per event`),
    'top self-time frames:',
  ];
  for (const f of summary.frames) {
    const where = f.location || f.where;
    lines.push(
      `  ${f.selfMs.toFixed(0).padStart(7)} ms ${f.percent.toFixed(1).padStart(5)} %  ${f.name.slice(0, 32).padEnd(32)} ${where.slice(0, 56).padEnd(56)} for: ${f.calledFrom}`,
    );
  }
  for (const [title, shares] of [
    ['self time by package:', summary.areas],
    ['inclusive time by package (its code + what it called synchronously):', summary.inclusive],
    ['inclusive time of nest-outbox functions:', summary.library],
  ] as const) {
    lines.push(title);
    for (const s of shares)
      lines.push(`  ${s.ms.toFixed(0).padStart(7)} ms ${s.percent.toFixed(1).padStart(5)} %${perEvent(s)}  ${s.name}`);
  }
  return lines.join('\n');
}

const INSTRUMENTATION = '(bench instrumentation)';

function areaOf(functionName: string, url: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node';
  const modules = url.lastIndexOf('/node_modules/');
  if (modules >= 0) {
    const [first, second] = url.slice(modules + '/node_modules/'.length).split('/');
    return first.startsWith('@') ? `${first}/${second}` : first;
  }
  if (url.includes('/libs/outbox/')) return 'nest-outbox';
  // The bench's counters wrap pg's and ioredis's send functions: on the stack of every call, they
  // must not make the bench look like the caller of everything beneath them.
  if (url.includes('/nodes/call-counter.')) return INSTRUMENTATION;
  if (url.includes('/bench/')) return 'bench';
  return 'other';
}

function shortPath(url: string): string {
  const path = url.startsWith('file:') ? fileURLToPath(url) : url;
  const modules = path.lastIndexOf('/node_modules/');
  if (modules >= 0) return path.slice(modules + '/node_modules/'.length);
  const root = path.search(/\/(libs|apps|bench|dist)\//);
  return root >= 0 ? path.slice(root + 1) : path;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const [file, count, events] = process.argv.slice(2);
  if (!file) {
    console.error('usage: node dist/bench/src/profile-top.js <file.cpuprofile> [count] [events]');
    process.exit(2);
  }
  console.log(formatSummary(summariseProfile(file, Number(count ?? 10), Number(events ?? 0))));
}
