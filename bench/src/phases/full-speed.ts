import { emptyTables } from '../bench-db.js';
import type { Bench } from '../harness.js';
import { measureEndToEnd, warmUp, type EndToEndRun } from '../measure/end-to-end.js';
import { withTopology, type Topology } from '../nodes/topology.js';

/**
 * The full-speed end-to-end measurement the phases share: empty tables, a topology started, a warm-up,
 * then the run's writers committing `events` events back to back until every handler of every
 * consuming service committed. `keys`: events carry ordering keys out of that many (round robin).
 */
export async function fullSpeed(bench: Bench, start: () => Promise<Topology>, keys?: number): Promise<EndToEndRun> {
  await emptyTables(bench.databaseUrl);
  const { writers, events } = bench.sizes;
  return withTopology(start(), async (topology) => {
    await warmUp(bench, topology, keys);
    bench.progress(`${topology.name}: ${events} events, ${writers} writers${keys ? `, ${keys} keys` : ''}`);
    const load = { shape: 'closed', writers, events, ...(keys ? { keys } : {}) } as const;
    return measureEndToEnd(bench, topology, load, { record: false, relay: true });
  });
}
