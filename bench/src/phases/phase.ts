import type { Bench } from '../harness.js';

/**
 * One phase of the bench: what it runs (in a fresh process of its own), how its figures print,
 * and the targets its figures answer. Adding a phase is one file exporting a PhaseDefinition and
 * one line in phases/index.ts; the table, results.json, the quick test's shape check and the
 * target summary follow from the registry.
 */
export interface PhaseDefinition<R = any> {
  /** Key in results.json and in `--only`. */
  name: string;
  /** Printed after the phase's letter. */
  title: string;
  run(bench: Bench): Promise<R>;
  /** The phase's lines of the printed table; `targets` shows which line carries which target. */
  rows(result: R, all: PhaseResults): Row[];
  /** The targets this phase answers; they may read other phases' results for ratios. */
  targets?: TargetDefinition[];
}

/** Results of every phase that ran, by name. */
export type PhaseResults = Record<string, unknown>;

export interface Row {
  measure: string;
  value: string;
  /** Id of the target this line answers. */
  target?: string;
}

export interface TargetDefinition {
  id: string;
  label: string;
  /** The figure must be at least (≥) or at most (≤) this. */
  goal: { op: '≥' | '≤'; value: number };
  /** The figure, null when a phase it needs did not run or failed, and how it was reached (e.g. "412 / 398 events/s"). */
  evaluate(all: PhaseResults): { value: number | null; detail: string };
}

/** A target's verdict, as results.json holds it. */
export interface Target {
  id: string;
  phase: string;
  label: string;
  value: number | null;
  goal: string;
  /** null when the figure is missing. */
  met: boolean | null;
  detail: string;
}

export function judge(phase: string, definition: TargetDefinition, all: PhaseResults): Target {
  let figure: { value: number | null; detail: string };
  try {
    figure = definition.evaluate(all);
  } catch {
    figure = { value: null, detail: 'n/a' };
  }
  const { op, value: goal } = definition.goal;
  const value = figure.value !== null && Number.isFinite(figure.value) ? figure.value : null;
  return {
    id: definition.id,
    phase,
    label: definition.label,
    value,
    goal: `${op} ${goal}`,
    met: value === null ? null : op === '≥' ? value >= goal : value <= goal,
    detail: figure.detail,
  };
}

/** The result of phase `name`, if it ran. */
export function resultOf<R>(all: PhaseResults, name: string): R | undefined {
  return all[name] as R | undefined;
}

/** A target's `evaluate` reading phase `name`'s own result: n/a when that phase did not run. */
export function fromResult<R>(
  name: string,
  figure: (result: R) => { value: number; detail: string },
): TargetDefinition['evaluate'] {
  return (all) => {
    const result = resultOf<R>(all, name);
    return result === undefined ? { value: null, detail: 'n/a' } : figure(result);
  };
}

// Formatting shared by the phases' rows.
export const int = (v: number) => (Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : 'n/a');
export const fix = (v: number, digits = 2) => (Number.isFinite(v) ? v.toFixed(digits) : 'n/a');
export const ms = (v: number, digits = 1) => `${fix(v, digits)} ms`;
export const pct = (share: number) => `${Math.round(100 * share)} %`;
