import type { BenchSizes, Machine } from './harness.js';
import { PHASES, letterOf } from './phases/index.js';
import { judge, type PhaseResults, type Target } from './phases/phase.js';

/** What results.json holds. */
export interface Results {
  mode: 'full' | 'quick';
  startedAt: string;
  seconds: number;
  machine: Machine;
  /** 1-, 5-, 15-minute load averages when the run ended, and when each phase started. */
  loadAtEnd: number[];
  phaseLoad: Record<string, number[]>;
  database: string;
  sizes: BenchSizes;
  /** Extra Node flags the measured processes ran with (`--node-args`); empty for a standard run. */
  nodeArgs: string[];
  /** Every registered phase, in order (present in `phases` unless it failed or was left out with --only). */
  phaseNames: string[];
  phases: PhaseResults;
  errors: Record<string, string>;
  /** Problems that did not spoil the figures, e.g. a phase process that had to be killed at the end. */
  warnings: string[];
  /** Every target of every registered phase, met or not (null: its figures are missing). */
  targets: Target[];
}

/** Every target of every registered phase against the figures at hand. */
export function targetsOf(phases: PhaseResults): Target[] {
  return PHASES.flatMap((phase) => (phase.targets ?? []).map((definition) => judge(phase.name, definition, phases)));
}

const verdict = (met: boolean | null) => (met === null ? 'n/a' : met ? 'met' : 'NOT MET');

/** The printed table: each phase's lines, with goal and verdict where a line answers a target; then the targets. */
export function formatTable(r: Results): string {
  const targets = new Map(r.targets.map((t) => [t.id, t]));
  const cells: string[][] = [];
  for (const phase of PHASES) {
    const result = r.phases[phase.name];
    const label = `${letterOf(phase.name)} ${phase.title}`;
    if (result === undefined) {
      if (r.errors[phase.name])
        cells.push([label, 'FAILED', r.errors[phase.name].split('\n')[0].slice(0, 100), '', '']);
      continue;
    }
    phase.rows(result, r.phases).forEach((row, i) => {
      const t = row.target ? targets.get(row.target) : undefined;
      cells.push([i === 0 ? label : '', row.measure, row.value, t ? t.goal : '', t ? verdict(t.met) : '']);
    });
  }
  const header = ['phase', 'measure', 'value', 'target', ''];
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)));
  const line = (c: string[]) =>
    c
      .map((v, i) => v.padEnd(widths[i]))
      .join('  ')
      .trimEnd();
  const m = r.machine;
  const met = r.targets.filter((t) => t.met).length;
  return [
    `nest-outbox benchmark (${r.mode}) — ${m.cpu}, ${m.cores} cores, ${m.memoryGB} GB, node ${m.node}, ${m.platform}; ` +
      `load average ${m.loadAtStart.join(' ')} at start, ${r.loadAtEnd.join(' ')} at end` +
      (r.nodeArgs.length > 0 ? `; node processes ran with ${r.nodeArgs.join(' ')}` : ''),
    line(header),
    line(widths.map((w) => '-'.repeat(w))),
    ...cells.map(line),
    '',
    `targets (ratios within this run), ${met}/${r.targets.length} met:`,
    ...r.targets.map(
      (t) =>
        `  ${verdict(t.met).padEnd(7)}  ${t.label} ${t.goal}: ${t.value === null ? 'n/a' : formatValue(t.value)} (${t.detail})`,
    ),
    ...r.warnings.map((w) => `warning: ${w}`),
  ].join('\n');
}

function formatValue(v: number): string {
  return Math.abs(v) >= 100 ? Math.round(v).toLocaleString('en-US') : v.toFixed(2);
}
