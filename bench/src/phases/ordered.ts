import type { EndToEndRun } from '../measure/end-to-end.js';
import { betweenServices } from '../nodes/topology.js';
import { fullSpeed } from './full-speed.js';
import { fix, fromResult, int, type PhaseDefinition } from './phase.js';
import { runRows } from './run-rows.js';

/** Active ordering keys: writers take them round robin. */
const KEYS = 64;

export interface OrderedResult {
  keys: number;
  /** 1 producer → 1 consuming service, its handler unordered. */
  unordered: EndToEndRun;
  /** The same, its handler ordered per key (`worker.ordered`). */
  ordered: EndToEndRun;
  /** events/s ordered / unordered. */
  rateRatio: number;
  /** CPU ms per event of all processes, ordered / unordered. */
  cpuRatio: number;
  /** `--profile`: the ordered run again under the V8 profiler in every process. */
  profiled?: EndToEndRun;
}

/**
 * Order per key at full speed: the between-services topology with one consuming service, every
 * event published with one of KEYS keys (round robin), its handler unordered then ordered, back
 * to back. What keeping each key in commit order costs in throughput and CPU.
 */
export const ordered: PhaseDefinition<OrderedResult> = {
  name: 'ordered',
  title: `order per key: ${KEYS} keys, ordered vs unordered handler`,
  async run(bench) {
    const unordered = await fullSpeed(bench, () => betweenServices(bench, 1), { keys: KEYS });
    const ordered = await fullSpeed(bench, () => betweenServices(bench, 1, true), { keys: KEYS });
    const result: OrderedResult = {
      keys: KEYS,
      unordered,
      ordered,
      rateRatio: ordered.eventsPerSecond / unordered.eventsPerSecond,
      cpuRatio: ordered.cpu.total.msPerEvent / unordered.cpu.total.msPerEvent,
    };
    if (bench.profile)
      result.profiled = await fullSpeed(bench, () => betweenServices(bench, 1, true), {
        keys: KEYS,
        profile: 'ordered',
      });
    return result;
  },
  rows: (r) => [
    ...runRows(r.unordered),
    ...runRows(r.ordered),
    {
      measure: `events/s, ordered / unordered (${r.keys} keys)`,
      value: `${int(r.ordered.eventsPerSecond)} / ${int(r.unordered.eventsPerSecond)} = ×${fix(r.rateRatio)}`,
      target: 'ordered.vs-unordered',
    },
    {
      measure: 'CPU ms per event, all processes, ordered / unordered',
      value: `${fix(r.ordered.cpu.total.msPerEvent, 3)} / ${fix(r.unordered.cpu.total.msPerEvent, 3)} = ×${fix(r.cpuRatio)}`,
    },
  ],
  targets: [
    {
      id: 'ordered.vs-unordered',
      label: `ordered handler throughput (${KEYS} keys) / unordered`,
      goal: { op: '≥', value: 0.5 },
      evaluate: fromResult<OrderedResult>('ordered', (r) => ({
        value: r.rateRatio,
        detail:
          `${int(r.ordered.eventsPerSecond)} / ${int(r.unordered.eventsPerSecond)} events/s; ` +
          `CPU ${fix(r.ordered.cpu.total.msPerEvent, 3)} / ${fix(r.unordered.cpu.total.msPerEvent, 3)} ms per event`,
      })),
    },
  ],
};
