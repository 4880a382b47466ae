import type { CpuSplit } from './cpu.js';
import type { Machine, BenchSizes } from './harness.js';
import type { BacklogResult } from './phases/backlog.js';
import type { BaselineResult } from './phases/baseline.js';
import type { FlushOverheadResult } from './phases/flush-overhead.js';
import type { LatencyResult } from './phases/latency.js';
import type { ThroughputResult } from './phases/throughput.js';
import type { ProfileSummary } from './profile-top.js';

export interface Phases {
  baseline?: BaselineResult;
  throughput?: ThroughputResult;
  latency?: LatencyResult;
  flushOverhead?: FlushOverheadResult;
  backlog?: BacklogResult;
}

export interface Target {
  id: string;
  label: string;
  value: number | null;
  /** e.g. "≥ 0.8" */
  goal: string;
  /** null when the figure is missing (phase skipped or failed). */
  met: boolean | null;
}

/** What results.json holds. */
export interface Results {
  mode: 'full' | 'quick';
  startedAt: string;
  seconds: number;
  machine: Machine;
  sizes: BenchSizes;
  phases: Phases;
  errors: Record<string, string>;
  /** Problems that did not spoil the figures, e.g. a phase process that had to be killed at the end. */
  warnings: string[];
  targets: Target[];
  profile?: ProfileSummary & { file: string };
}

/** Flat: the live heap after GC ends the drain at most this many MB above where it began (see BacklogResult). */
export const LIVE_HEAP_FLAT_MB = 10;

/** The targets to report (never asserted): each figure against its goal. */
export function targetsOf(p: Phases): Target[] {
  const at = (v: number | undefined | null, goal: number, higherIsBetter: boolean) =>
    v === undefined || v === null || !Number.isFinite(v) ? null : higherIsBetter ? v >= goal : v <= goal;
  const mode = (n: number) => p.throughput?.modes.find((m) => m.eventsPerAggregate === n)?.ratioToBaseline ?? null;
  const flush = (n: number) => p.flushOverhead?.cases.find((c) => c.aggregates === n)?.ratio ?? null;
  const t = (id: string, label: string, value: number | null | undefined, goal: number, higher: boolean): Target => ({
    id,
    label,
    value: value ?? null,
    goal: `${higher ? '≥' : '≤'} ${goal}`,
    met: at(value, goal, higher),
  });
  const b = p.backlog;
  return [
    t('b.ratio.1', 'b/a, 1 event per aggregate', mode(1), 0.8, true),
    t('b.ratio.10', 'b/a, 10 events per aggregate', mode(10), 0.8, true),
    t('c.p50', 'c p50 commit→handler (ms)', p.latency?.p50, 5, false),
    t('c.p99', 'c p99 commit→handler (ms)', p.latency?.p99, 20, false),
    t('d.ratio.1', 'd on/off, 1 aggregate', flush(1), 1.35, false),
    t('d.ratio.100', 'd on/off, 100 aggregates', flush(100), 1.2, false),
    t('e.ratio', 'e drain / addBulk rate', b?.ratioToAddBulk, 0.8, true),
    t('e.rss', 'e peak RSS (MB)', b?.rssPeakMB, 250, false),
    t('e.flat', 'e live heap growth over the drain (MB)', b?.liveHeapGrowthMB, LIVE_HEAP_FLAT_MB, false),
  ];
}

const int = (v: number) => Math.round(v).toLocaleString('en-US');
const fix = (v: number, d = 2) => v.toFixed(d);
const cpuText = (c: CpuSplit) =>
  `${fix(c.nodeSeconds, 1)} / ${fix(c.postgresSeconds, 1)} / ${fix(c.redisSeconds, 1)}; ${Math.round(100 * c.machineBusy)} %`;
const status = (met: boolean | null) => (met === null ? '' : met ? 'met' : 'NOT MET');

/** The printed table: one row per figure, with target and met / not met where a target applies. */
export function formatTable(r: Results): string {
  const targets = new Map(r.targets.map((t) => [t.id, t]));
  const rows: Array<[string, string, string, string?]> = [];
  const row = (phase: string, what: string, value: string, targetId?: string) =>
    rows.push([phase, what, value, targetId]);
  const { baseline: a, throughput: b, latency: c, flushOverhead: d, backlog: e } = r.phases;
  if (a) {
    row(
      'a baseline',
      `BullMQ addBulk(${a.batch}) + Worker(${a.concurrency}), end to end`,
      `${int(a.endToEndPerSecond)} jobs/s`,
    );
    row('', `  CPU s: this process / postgres / redis; machine busy`, cpuText(a.cpu));
    row('', 'addBulk only, no worker', `${int(a.addBulkPerSecond)} jobs/s`);
    row('', `jobs / payload`, `${int(a.jobs)} / ${a.payloadBytes} B`);
  }
  if (b) {
    for (const m of b.modes) {
      row(
        m.eventsPerAggregate === 1 ? 'b throughput' : '',
        `${m.eventsPerAggregate} event(s)/aggregate, ${m.writers} writers, ${int(m.events)} events`,
        `${int(m.eventsPerSecond)} events/s`,
      );
      row('', `  writers committed at`, `${int(m.committedPerSecond)} events/s`);
      row(
        '',
        `  relay batches (mean rows per batch)`,
        `${int(m.relayBatches)} (${fix(m.events / Math.max(1, m.relayBatches), 1)})`,
      );
      row('', `  CPU s: this process / postgres / redis; machine busy`, cpuText(m.cpu));
      row(
        '',
        `  ratio b/a`,
        m.ratioToBaseline === null ? 'n/a' : fix(m.ratioToBaseline),
        `b.ratio.${m.eventsPerAggregate}`,
      );
    }
    row('', `handler: ${b.handler}`, '');
  }
  if (c) {
    row('c latency', `${c.rate} events/s for ${c.seconds} s (achieved ${int(c.achievedRate)}/s)`, '');
    row('', 'commit → handler start p50', `${fix(c.p50, 1)} ms`, 'c.p50');
    row('', 'p95', `${fix(c.p95, 1)} ms`);
    row('', 'p99', `${fix(c.p99, 1)} ms`, 'c.p99');
    row('', 'max', `${fix(c.max, 1)} ms`);
    row('', 'flush (begin+insert+commit) p50, for context', `${fix(c.flushP50, 1)} ms`);
  }
  if (d) {
    for (const k of d.cases) {
      row(
        k.aggregates === 1 ? 'd flush overhead' : '',
        `${k.aggregates} aggregate(s) + ${k.aggregates} event(s), median of ${k.flushes}`,
        `off ${fix(k.offMs)} ms, on ${fix(k.onMs)} ms`,
      );
      row('', '  ratio on/off', fix(k.ratio), `d.ratio.${k.aggregates}`);
    }
  }
  if (e) {
    row(
      'e backlog drain',
      `${int(e.rows)} pending rows, relay alone (written in ${fix(e.writeSeconds, 1)} s)`,
      `${int(e.rowsPerSecond)} rows/s`,
    );
    row('', 'ratio to addBulk-only rate', e.ratioToAddBulk === null ? 'n/a' : fix(e.ratioToAddBulk), 'e.ratio');
    row('', `peak RSS (before drain ${int(e.rssBeforeMB)} MB)`, `${int(e.rssPeakMB)} MB`, 'e.rss');
    row('', 'RSS at 25/50/75/100 % drained', e.rssAtQuartersMB.map(int).join(' / ') + ' MB');
    row(
      '',
      'live heap after GC, at boot → after the drain',
      `${fix(e.liveHeapAtBootMB, 1)} → ${fix(e.liveHeapAfterMB, 1)} MB`,
    );
    row('', '  flat: live heap growth', `${fix(e.liveHeapGrowthMB, 1)} MB`, 'e.flat');
  }
  for (const [phase, message] of Object.entries(r.errors)) row(phase, 'FAILED', message.slice(0, 80));

  const cells = rows.map(([phase, what, value, id]) => {
    const t = id ? targets.get(id) : undefined;
    return [phase, what, value, t ? t.goal : '', t ? status(t.met) : ''];
  });
  const header = ['phase', 'measure', 'value', 'target', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => v.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  const m = r.machine;
  return [
    `nest-outbox benchmark (${r.mode}) — ${m.cpu}, ${m.cores} cores, ${m.memoryGB} GB, node ${m.node}, ${m.platform}; load average at start ${m.loadAtStart}`,
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...cells.map(line),
    '',
    `targets met: ${r.targets.filter((t) => t.met).length}/${r.targets.length}` +
      (r.targets.some((t) => t.met === false)
        ? `  (not met: ${r.targets
            .filter((t) => t.met === false)
            .map((t) => t.label)
            .join('; ')})`
        : ''),
    ...r.warnings.map((w) => `warning: ${w}`),
  ].join('\n');
}
