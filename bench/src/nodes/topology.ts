import { dropServiceDatabase, freshServiceDatabase } from '../bench-db.js';
import { WORKER_CONCURRENCY, type Bench } from '../harness.js';
import { CAPTURE_FOR_RELAY, CAPTURE_ONLY, RELAY_AND_WORKER, RELAY_ONLY, WORKER_ONLY } from '../outbox-options.js';
import { deleteKeys } from '../redis-keys.js';
import { startNode, type BenchNode } from './node-process.js';
import type { NodeSpec } from './protocol.js';

/**
 * The process layouts the bench measures. `roles` names each node process for the CPU figures.
 *  - deployment: writers in an API process (capture, sending its rows on commit: the library's
 *    default), relay and worker in outbox process(es) — the production shape, where both cores
 *    can work; `relayOnly`: the API process leaves every row to the relay;
 *  - split: the API process leaves its rows to a relay; relay and worker in processes of their
 *    own, so each one's CPU shows apart;
 *  - single process: writers, relay and worker in one process (the small-service variant);
 *  - naive dual write: a producer process (commit, then queue.add) and a worker process;
 *  - between services: a producer service (API process + relay process, which moves every row; no
 *    handlers of its own)
 *    and consuming services, each a worker process with a service name and a database of its own.
 */
export interface Topology {
  name: string;
  writer: BenchNode;
  consumers: BenchNode[];
  roles: Record<string, BenchNode[]>;
  /** Every node, once. */
  nodes: BenchNode[];
  /** Consuming services: each event is handled once by each of them. */
  services: number;
  /** Databases of the run besides the run's own (consuming services'): their backends' CPU is the run's. */
  databases?: string[];
  /** Releases what the topology made besides its processes (databases, Redis keys); after they closed. */
  dispose?: () => Promise<void>;
}

/** Pools big enough that nobody waits for a connection: writers + a spare; handlers + relay + spares. */
const apiPool = (bench: Bench) => bench.sizes.writers + 2;
const OUTBOX_POOL = WORKER_CONCURRENCY + 4;
/** A consuming service's worker process (no relay): its handlers + spares. Several share one server's connections. */
const CONSUMER_POOL = WORKER_CONCURRENCY + 2;

function spec(role: typeof CAPTURE_ONLY, poolMax: number): NodeSpec {
  return { kind: 'outbox', ...role, poolMax };
}

/** Starts nodes side by side (a third element: the node's own database); if one fails to boot, the others are stopped. */
async function startAll(bench: Bench, specs: Array<[string, NodeSpec, string?]>): Promise<BenchNode[]> {
  const started = await Promise.allSettled(
    specs.map(([label, nodeSpec, url]) => startNode(bench, label, nodeSpec, url)),
  );
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    for (const s of started) if (s.status === 'fulfilled') s.value.kill();
    throw failed.reason;
  }
  return started.map((s) => (s as PromiseFulfilledResult<BenchNode>).value);
}

/** `relayOnly`: the API process leaves its rows to the relay (`relay.dispatchOnCommit: false`). */
export async function deployment(bench: Bench, outboxProcesses = 1, relayOnly = false): Promise<Topology> {
  const outboxLabels = Array.from({ length: outboxProcesses }, (_, i) =>
    outboxProcesses === 1 ? 'outbox' : `outbox ${i + 1}`,
  );
  const [api, ...outbox] = await startAll(bench, [
    ['api', spec(relayOnly ? CAPTURE_FOR_RELAY : CAPTURE_ONLY, apiPool(bench))],
    ...outboxLabels.map((label): [string, NodeSpec] => [label, spec(RELAY_AND_WORKER, OUTBOX_POOL)]),
  ]);
  return {
    name:
      (outboxProcesses === 1 ? 'deployment' : `deployment, ${outboxProcesses} outbox processes`) +
      (relayOnly ? ', relay only (dispatchOnCommit: false)' : ''),
    writer: api,
    consumers: outbox,
    roles: { api: [api], outbox },
    nodes: [api, ...outbox],
    services: 1,
  };
}

export async function splitDeployment(bench: Bench): Promise<Topology> {
  const [api, relay, worker] = await startAll(bench, [
    ['api', spec(CAPTURE_FOR_RELAY, apiPool(bench))],
    ['relay', spec(RELAY_ONLY, 4)],
    ['worker', spec(WORKER_ONLY, OUTBOX_POOL)],
  ]);
  return {
    name: 'split: API + relay + worker processes, dispatchOnCommit: false',
    writer: api,
    consumers: [worker],
    roles: { api: [api], relay: [relay], worker: [worker] },
    nodes: [api, relay, worker],
    services: 1,
  };
}

export async function singleProcess(bench: Bench): Promise<Topology> {
  const [node] = await startAll(bench, [['single', spec(RELAY_AND_WORKER, apiPool(bench) + OUTBOX_POOL)]]);
  return {
    name: 'single process',
    writer: node,
    consumers: [node],
    roles: { single: [node] },
    nodes: [node],
    services: 1,
  };
}

export async function naiveDualWrite(bench: Bench): Promise<Topology> {
  const [api, worker] = await startAll(bench, [
    ['naive api', { kind: 'naive-api', poolMax: apiPool(bench) }],
    ['naive worker', { kind: 'naive-worker', poolMax: OUTBOX_POOL }],
  ]);
  return {
    name: 'naive dual write',
    writer: api,
    consumers: [worker],
    roles: { api: [api], worker: [worker] },
    nodes: [api, worker],
    services: 1,
  };
}

/** The producing service of the between-services topology; its consumers are consumer-1, consumer-2, ... */
const PRODUCER = 'producer';
/** Topologies started so far by this phase process: each gets BullMQ keys (and so a registry) of its own. */
let servicesStarted = 0;

/**
 * Between services: the producer's API process writes (capture, `relay.dispatchOnCommit: false`, so
 * the relay's cost is what fan-out measures) and its relay process routes
 * each row to the queue of every subscribed service; `consumers` consuming services, each one
 * worker process with its own service name and its own database (its inbox), handle them —
 * `ordered`: keeping order per key. The producer has no handlers, so it subscribes to nothing.
 * Each such topology has Redis keys under a prefix of its own: subscriptions only add (and a
 * handler once ordered stays ordered), so a later topology must not see an earlier one's registry.
 */
export async function betweenServices(bench: Bench, consumers: number, ordered = false): Promise<Topology> {
  const where: Bench = { ...bench, prefix: `${bench.prefix}-t${++servicesStarted}` };
  const names = Array.from({ length: consumers }, (_, i) => `consumer-${i + 1}`);
  const created = await Promise.allSettled(names.map((name) => freshServiceDatabase(bench.databaseUrl, name)));
  const databases = created.flatMap((c) => (c.status === 'fulfilled' ? [c.value] : []));
  const dispose = async () => {
    await deleteKeys(bench.redisUrl, `${where.prefix}:*`);
    for (const { name } of databases) await dropServiceDatabase(bench.databaseUrl, name);
  };
  let nodes: BenchNode[];
  try {
    const failed = created.find((c): c is PromiseRejectedResult => c.status === 'rejected');
    if (failed) throw failed.reason;
    const producer = { kind: 'outbox', service: PRODUCER, handlers: false } as const;
    nodes = await startAll(where, [
      ['api', { ...producer, ...CAPTURE_FOR_RELAY, poolMax: apiPool(bench) }],
      ['relay', { ...producer, ...RELAY_ONLY, poolMax: 4 }],
      ...names.map((service, i): [string, NodeSpec, string] => [
        service,
        { kind: 'outbox', ...WORKER_ONLY, poolMax: CONSUMER_POOL, service, ordered },
        databases[i].url,
      ]),
    ]);
  } catch (error) {
    await dispose();
    throw error;
  }
  const [api, relay, ...workers] = nodes;
  return {
    name: `1 producer → ${consumers} consuming service${consumers === 1 ? '' : 's'}${ordered ? ', ordered per key' : ''}`,
    writer: api,
    consumers: workers,
    roles: { api: [api], relay: [relay], ...Object.fromEntries(names.map((name, i) => [name, [workers[i]]])) },
    nodes,
    services: consumers,
    databases: databases.map((d) => d.name),
    dispose,
  };
}

/** Runs `fn` on a topology and closes its processes (then disposes of the rest) whatever happens. */
export async function withTopology<T>(start: Promise<Topology>, fn: (topology: Topology) => Promise<T>): Promise<T> {
  const topology = await start;
  let result: T;
  try {
    result = await fn(topology);
  } catch (error) {
    for (const node of topology.nodes) node.kill();
    await topology.dispose?.().catch(() => undefined);
    throw error;
  }
  const closed = await Promise.allSettled(topology.nodes.map((node) => node.close()));
  await topology.dispose?.();
  const failed = closed.find((c): c is PromiseRejectedResult => c.status === 'rejected');
  if (failed) throw failed.reason;
  return result;
}
