import { emptyTables } from '../bench-db.js';
import { measureEndToEnd, warmUp, type EndToEndRun } from '../measure/end-to-end.js';
import { naiveDualWrite as naiveTopology, withTopology } from '../nodes/topology.js';
import type { PhaseDefinition } from './phase.js';
import { runRows } from './run-rows.js';

export interface NaiveDualWriteResult {
  /** Writers as fast as they go. */
  fullRate: EndToEndRun;
  /** The steady open-loop rate, with latency. */
  steady: EndToEndRun;
  /** `--profile`: the steady rate again under the V8 profiler, to set beside the outbox's profiled run. */
  profiled?: EndToEndRun;
}

/**
 * Naive dual write: what users do without an outbox — commit, then `queue.add` per event — with a
 * worker process running the same handler transaction and inbox mark by hand. Same workload and
 * process shape as the outbox's deployment runs: the bar the outbox's end-to-end rate must clear.
 */
export const naiveDualWrite: PhaseDefinition<NaiveDualWriteResult> = {
  name: 'naiveDualWrite',
  title: 'naive dual write (commit, then queue.add)',
  async run(bench) {
    await emptyTables(bench.databaseUrl);
    const { writers, events, latencyRate: rate, latencySeconds } = bench.sizes;
    return withTopology(naiveTopology(bench), async (topology) => {
      await warmUp(bench, topology);
      bench.progress(`${events} events, ${writers} writers`);
      const fullRate = await measureEndToEnd(
        bench,
        topology,
        { shape: 'closed', writers, events },
        { record: false, relay: false },
      );
      bench.progress(`${rate} events/s for ${latencySeconds} s`);
      const load = { shape: 'open', rate, events: rate * latencySeconds } as const;
      const steady = await measureEndToEnd(bench, topology, load, { record: true, relay: false });
      if (!bench.profile) return { fullRate, steady };
      bench.progress('profiled run (V8 CPU profiler in both processes)');
      const profiled = await measureEndToEnd(bench, topology, load, { record: true, relay: false, profile: 'naive' });
      return { fullRate, steady, profiled };
    });
  },
  rows: (r) => [...runRows(r.fullRate), ...runRows(r.steady)],
};
