import { consumeCeiling } from './consume-ceiling.js';
import { endToEnd } from './end-to-end.js';
import { fanOut } from './fan-out.js';
import { flushOverhead } from './flush-overhead.js';
import { handlerDrain } from './handler-drain.js';
import { latency } from './latency.js';
import { naiveDualWrite } from './naive-dual-write.js';
import { ordered } from './ordered.js';
import type { PhaseDefinition } from './phase.js';
import { rawBullmq } from './raw-bullmq.js';
import { relayDrain } from './relay-drain.js';
import { scale } from './scale.js';
import { sharedDrain } from './shared-drain.js';

/**
 * Every phase, in the order they run and print (a, b, c, ...). A phase is one file; adding one is
 * that file plus one line here — the table, results.json, the targets and the quick test's shape
 * check follow. Baselines come first so the ratios of later phases can be read as they finish;
 * fan-out and ordered measure their own baseline (one unordered consuming service) in the phase.
 */
export const PHASES: readonly PhaseDefinition[] = [
  rawBullmq,
  consumeCeiling,
  naiveDualWrite,
  endToEnd,
  latency,
  flushOverhead,
  relayDrain,
  handlerDrain,
  sharedDrain,
  scale,
  fanOut,
  ordered,
];

export function phaseNamed(name: string): PhaseDefinition {
  const phase = PHASES.find((p) => p.name === name);
  if (!phase) throw new Error(`Unknown phase ${name}; phases are ${PHASES.map((p) => p.name).join(', ')}.`);
  return phase;
}

/** "a", "b", ...: a phase's letter is its place in the registry. */
export function letterOf(name: string): string {
  return String.fromCharCode(97 + PHASES.findIndex((p) => p.name === name));
}
