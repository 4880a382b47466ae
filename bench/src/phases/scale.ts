import type { EndToEndRun } from '../measure/end-to-end.js';
import { deployment } from '../nodes/topology.js';
import { fullSpeed } from './full-speed.js';
import { fix, type PhaseDefinition } from './phase.js';
import { runRows } from './run-rows.js';

export interface ScaleResult {
  /** The same full-speed workload with 1, then 2 outbox processes beside the API process. */
  runs: Array<{ outboxProcesses: number; run: EndToEndRun }>;
  /** events/s with 2 outbox processes / with 1. */
  growth: number;
}

const OUTBOX_PROCESSES = [1, 2];

/**
 * How end-to-end throughput grows with more outbox processes (each a relay + worker; the relays
 * share the rows through SKIP LOCKED, the workers the queue): the same writers, 1 then 2 outbox
 * processes, measured back to back in this phase so the two figures share the machine's state.
 */
export const scale: PhaseDefinition<ScaleResult> = {
  name: 'scale',
  title: 'scale-out: 1 and 2 outbox processes',
  async run(bench) {
    const runs: ScaleResult['runs'] = [];
    for (const outboxProcesses of OUTBOX_PROCESSES)
      runs.push({ outboxProcesses, run: await fullSpeed(bench, () => deployment(bench, outboxProcesses)) });
    return { runs, growth: runs[1].run.eventsPerSecond / runs[0].run.eventsPerSecond };
  },
  rows: (r) => [
    ...r.runs.flatMap(({ run }) => runRows(run)),
    { measure: 'events/s with 2 outbox processes / with 1', value: `×${fix(r.growth)}` },
  ],
};
