import { RequestContext } from '@mikro-orm/core';
import { OutboxMonitor, OutboxService, OutboxSubscriptions } from 'nest-outbox';
import { BenchAggregate, BootClock, SomethingHappened, startBenchApp, ormOf } from '../bench.app.js';
import { now } from '../harness.js';
import { benchOutboxOptions } from '../outbox-options.js';
import type { NodeRole } from './node-role.js';
import type { NodeConfig, NodeSpec } from './protocol.js';
import { runLoad } from './writers.js';

/**
 * A process of a service using the outbox: a Nest app with MikroORM and OutboxModule. With relay
 * and worker off it is the API process (it only writes); with both on and nothing written it is
 * the outbox process; with both on and writing, the single-process variant; with the worker alone
 * and a service name of its own, a consuming service (its own database, given in `config`).
 */
export async function startOutboxNode(
  config: NodeConfig,
  spec: Extract<NodeSpec, { kind: 'outbox' }>,
): Promise<NodeRole> {
  const handlers = spec.handlers !== false;
  const app = await startBenchApp({
    databaseUrl: config.databaseUrl,
    outbox: benchOutboxOptions(config, spec, spec.service, spec.ordered),
    poolMax: spec.poolMax,
    handlers,
  });
  // A relay without a worker in this process still needs the service's subscription to route
  // its rows: provisioned here, as a deploy step would. A service without handlers subscribes to nothing.
  if (spec.relay && !spec.worker && handlers) await app.get(OutboxSubscriptions).provision();
  const orm = ormOf(app);
  const clock = app.get(BootClock);
  const monitor = app.get(OutboxMonitor);
  const outbox = app.get(OutboxService);
  return {
    bootedAt: clock.bootedAt,
    liveHeapMB: clock.liveHeapMB,
    write: (load, record) =>
      runLoad(load, record, async (n) => {
        const { keys } = load;
        if (!keys) {
          const em = orm.em.fork();
          const startedAt = now();
          const aggregate = BenchAggregate.create(n, 1, startedAt);
          em.persist(aggregate);
          await em.flush();
          return { id: aggregate.id, startedAt, committedAt: now() };
        }
        // Keyed: the same aggregate and event in one flush, the event published with one of `keys`
        // keys (round robin) in a request context, as a request handler would.
        return RequestContext.create(orm.em, async () => {
          const em = orm.em.getContext();
          const startedAt = now();
          const aggregate = BenchAggregate.create(n, 0, startedAt);
          em.persist(aggregate);
          outbox.publish(new SomethingHappened(aggregate.id, 0, startedAt), { key: `bench-${n % keys}` });
          await em.flush();
          return { id: aggregate.id, startedAt, committedAt: now() };
        });
      }),
    // An in-memory counter of this process: reading it costs the relay nothing.
    relayDispatched: () => monitor.processCounters().relay.dispatched,
    close: () => app.close(),
  };
}
