import { emptyTables } from '../bench-db.js';
import type { Bench } from '../harness.js';
import { measureEndToEnd, warmUp, type EndToEndRun } from '../measure/end-to-end.js';
import { withTopology, type Topology } from '../nodes/topology.js';

export interface FullSpeedOptions {
  /** Events carry ordering keys out of this many (round robin). */
  keys?: number;
  /** Record a V8 CPU profile of every process, named `<profile>-<role>.cpuprofile` (a run of its own). */
  profile?: string;
}

/**
 * The full-speed end-to-end measurement the phases share: empty tables, a topology started, a
 * warm-up, then the run's writers committing `events` events back to back until every handler of
 * every consuming service committed.
 */
export async function fullSpeed(
  bench: Bench,
  start: () => Promise<Topology>,
  { keys, profile }: FullSpeedOptions = {},
): Promise<EndToEndRun> {
  await emptyTables(bench.databaseUrl);
  const { writers, events } = bench.sizes;
  return withTopology(start(), async (topology) => {
    await warmUp(bench, topology, keys);
    bench.progress(
      `${topology.name}: ${events} events, ${writers} writers${keys ? `, ${keys} keys` : ''}${profile ? ', profiled' : ''}`,
    );
    const load = { shape: 'closed', writers, events, ...(keys ? { keys } : {}) } as const;
    return measureEndToEnd(bench, topology, load, { record: false, relay: true, ...(profile ? { profile } : {}) });
  });
}
