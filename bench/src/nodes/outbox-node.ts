import { OutboxMonitor, OutboxSubscriptions } from 'nest-outbox';
import { BenchAggregate, BootClock, startBenchApp, ormOf } from '../bench.app.js';
import { now } from '../harness.js';
import { benchOutboxOptions } from '../outbox-options.js';
import type { NodeRole } from './node-role.js';
import type { NodeConfig, NodeSpec } from './protocol.js';
import { runLoad } from './writers.js';

/**
 * A process of a service using the outbox: a Nest app with MikroORM and OutboxModule. With relay
 * and worker off it is the API process (it only writes); with both on and nothing written it is
 * the outbox process; with both on and writing, the single-process variant.
 */
export async function startOutboxNode(
  config: NodeConfig,
  spec: Extract<NodeSpec, { kind: 'outbox' }>,
): Promise<NodeRole> {
  const app = await startBenchApp({
    databaseUrl: config.databaseUrl,
    outbox: benchOutboxOptions(config, spec, spec.service),
    poolMax: spec.poolMax,
  });
  // A relay without a worker in this process still needs the service's subscription to route
  // its rows: provisioned here, as a deploy step would.
  if (spec.relay && !spec.worker) await app.get(OutboxSubscriptions).provision();
  const orm = ormOf(app);
  const clock = app.get(BootClock);
  const monitor = app.get(OutboxMonitor);
  return {
    bootedAt: clock.bootedAt,
    liveHeapMB: clock.liveHeapMB,
    write: (load, record) =>
      runLoad(load, record, async (n) => {
        const em = orm.em.fork();
        const startedAt = now();
        const aggregate = BenchAggregate.create(n, 1, startedAt);
        em.persist(aggregate);
        await em.flush();
        return { id: aggregate.id, startedAt, committedAt: now() };
      }),
    // An in-memory counter of this process: reading it costs the relay nothing.
    relayDispatched: () => monitor.processCounters().relay.dispatched,
    close: () => app.close(),
  };
}
