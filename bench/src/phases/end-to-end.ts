import type { EndToEndRun } from '../measure/end-to-end.js';
import { deployment, singleProcess } from '../nodes/topology.js';
import { fullSpeed } from './full-speed.js';
import type { NaiveDualWriteResult } from './naive-dual-write.js';
import { fix, int, resultOf, type PhaseDefinition } from './phase.js';
import { runRows } from './run-rows.js';

export interface EndToEndResult {
  /** API process (sending on commit) + outbox process. */
  deployment: EndToEndRun;
  /** The same with `relay.dispatchOnCommit: false`: the relay claims every row. */
  relayOnly: EndToEndRun;
  /** Writers, relay and worker in one process. */
  single: EndToEndRun;
}

/**
 * The outbox end to end at full speed: writers flush aggregates with one event each, capture
 * writes the rows, the API process sends them to BullMQ on commit (the relay, with
 * `dispatchOnCommit: false`), the worker runs the handler in a transaction with its inbox mark.
 * Deployment shape (API + outbox process), the relay-only variant and the single-process one.
 */
export const endToEnd: PhaseDefinition<EndToEndResult> = {
  name: 'endToEnd',
  title: 'outbox end to end, full speed',
  async run(bench) {
    return {
      deployment: await fullSpeed(bench, () => deployment(bench)),
      relayOnly: await fullSpeed(bench, () => deployment(bench, 1, true)),
      single: await fullSpeed(bench, () => singleProcess(bench)),
    };
  },
  rows: (r) => [...runRows(r.deployment, { rate: 'e2e.vs-naive' }), ...runRows(r.relayOnly), ...runRows(r.single)],
  targets: [
    {
      id: 'e2e.vs-naive',
      label: 'end to end (deployment shape) / naive dual write',
      goal: { op: '≥', value: 1.0 },
      evaluate(all) {
        const outbox = resultOf<EndToEndResult>(all, 'endToEnd')?.deployment.eventsPerSecond;
        const naive = resultOf<NaiveDualWriteResult>(all, 'naiveDualWrite')?.fullRate.eventsPerSecond;
        if (outbox === undefined || naive === undefined) return { value: null, detail: 'n/a' };
        return { value: outbox / naive, detail: `${int(outbox)} / ${int(naive)} events/s = ${fix(outbox / naive)}` };
      },
    },
  ],
};
