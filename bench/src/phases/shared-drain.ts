import { measureDrain, type DrainRun } from '../measure/drain.js';
import { RELAY_AND_WORKER, SHARED_RUNS } from '../outbox-options.js';
import type { ConsumeCeilingResult } from './consume-ceiling.js';
import { fix, int, resultOf, type PhaseDefinition } from './phase.js';
import { callRows, cpuRows } from './run-rows.js';

/**
 * The handler drain again with `worker.handlersPerTransaction` on: handler runs that become ready
 * together share one transaction. Beside the default drain, against the same consume ceiling.
 */
export const sharedDrain: PhaseDefinition<DrainRun> = {
  name: 'sharedDrain',
  title: `backlog drain, up to ${SHARED_RUNS} handler runs per transaction`,
  run: (bench) =>
    measureDrain(
      bench,
      { ...RELAY_AND_WORKER, handlersPerTransaction: SHARED_RUNS },
      bench.sizes.backlogRows,
      'handled',
    ),
  rows: (h, all) => {
    const ceiling = resultOf<ConsumeCeilingResult>(all, 'consumeCeiling');
    const plain = resultOf<DrainRun>(all, 'handlerDrain');
    return [
      {
        measure: `${int(h.rows)} pending rows → every handler committed, worker.handlersPerTransaction ${SHARED_RUNS}`,
        value:
          `${int(h.perSecond)} events/s` +
          (ceiling ? `; consume ceiling ×${fix(h.perSecond / ceiling.jobsPerSecond)}` : '') +
          (plain ? `; one per transaction ×${fix(h.perSecond / plain.perSecond)}` : ''),
      },
      { measure: '  peak RSS of the outbox process', value: `${int(h.peakRssMB)} MB` },
      ...cpuRows(h.cpu),
      ...callRows(h.calls),
    ];
  },
  targets: [],
};
