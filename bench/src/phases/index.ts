import { consumeCeiling } from './consume-ceiling.js';
import { endToEnd } from './end-to-end.js';
import { flushOverhead } from './flush-overhead.js';
import { handlerDrain } from './handler-drain.js';
import { latency } from './latency.js';
import { naiveDualWrite } from './naive-dual-write.js';
import type { PhaseDefinition } from './phase.js';
import { rawBullmq } from './raw-bullmq.js';
import { relayDrain } from './relay-drain.js';
import { scale } from './scale.js';

/**
 * Every phase, in the order they run and print (a, b, c, ...). A phase is one file; adding one is
 * that file plus one line here — the table, results.json, the targets and the quick test's shape
 * check follow. Baselines come first so the ratios of later phases can be read as they finish.
 * To come after the delivery rewrite: fan-out (1 producer → 3 consumer services, relay CPU per
 * consumer) and ordered delivery (≥ 0.5 × unordered with 50+ active keys).
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
  scale,
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
