import { WORKER_CONCURRENCY, type Bench } from '../harness.js';
import { CAPTURE_ONLY, RELAY_AND_WORKER, RELAY_ONLY, WORKER_ONLY } from '../outbox-options.js';
import { startNode, type BenchNode } from './node-process.js';
import type { NodeSpec } from './protocol.js';

/**
 * The process layouts the bench measures. `roles` names each node process for the CPU figures.
 *  - deployment: writers in an API process (capture only), relay and worker in outbox process(es) —
 *    the production shape, where both cores can work;
 *  - split: relay and worker in processes of their own, so each one's CPU shows apart;
 *  - single process: writers, relay and worker in one process (the small-service variant);
 *  - naive dual write: a producer process (commit, then queue.add) and a worker process.
 */
export interface Topology {
  name: string;
  writer: BenchNode;
  consumers: BenchNode[];
  roles: Record<string, BenchNode[]>;
  /** Every node, once. */
  nodes: BenchNode[];
}

/** Pools big enough that nobody waits for a connection: writers + a spare; handlers + relay + spares. */
const apiPool = (bench: Bench) => bench.sizes.writers + 2;
const OUTBOX_POOL = WORKER_CONCURRENCY + 4;

function spec(role: typeof CAPTURE_ONLY, poolMax: number): NodeSpec {
  return { kind: 'outbox', ...role, poolMax };
}

/** Starts nodes side by side; if one fails to boot, the others are stopped. */
async function startAll(bench: Bench, specs: Array<[string, NodeSpec]>): Promise<BenchNode[]> {
  const started = await Promise.allSettled(specs.map(([label, nodeSpec]) => startNode(bench, label, nodeSpec)));
  const failed = started.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    for (const s of started) if (s.status === 'fulfilled') s.value.kill();
    throw failed.reason;
  }
  return started.map((s) => (s as PromiseFulfilledResult<BenchNode>).value);
}

export async function deployment(bench: Bench, outboxProcesses = 1): Promise<Topology> {
  const outboxLabels = Array.from({ length: outboxProcesses }, (_, i) =>
    outboxProcesses === 1 ? 'outbox' : `outbox ${i + 1}`,
  );
  const [api, ...outbox] = await startAll(bench, [
    ['api', spec(CAPTURE_ONLY, apiPool(bench))],
    ...outboxLabels.map((label): [string, NodeSpec] => [label, spec(RELAY_AND_WORKER, OUTBOX_POOL)]),
  ]);
  return {
    name: outboxProcesses === 1 ? 'deployment' : `deployment, ${outboxProcesses} outbox processes`,
    writer: api,
    consumers: outbox,
    roles: { api: [api], outbox },
    nodes: [api, ...outbox],
  };
}

export async function splitDeployment(bench: Bench): Promise<Topology> {
  const [api, relay, worker] = await startAll(bench, [
    ['api', spec(CAPTURE_ONLY, apiPool(bench))],
    ['relay', spec(RELAY_ONLY, 4)],
    ['worker', spec(WORKER_ONLY, OUTBOX_POOL)],
  ]);
  return {
    name: 'split: API + relay + worker processes',
    writer: api,
    consumers: [worker],
    roles: { api: [api], relay: [relay], worker: [worker] },
    nodes: [api, relay, worker],
  };
}

export async function singleProcess(bench: Bench): Promise<Topology> {
  const [node] = await startAll(bench, [['single', spec(RELAY_AND_WORKER, apiPool(bench) + OUTBOX_POOL)]]);
  return { name: 'single process', writer: node, consumers: [node], roles: { single: [node] }, nodes: [node] };
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
  };
}

/** Runs `fn` on a topology and closes its processes whatever happens. */
export async function withTopology<T>(start: Promise<Topology>, fn: (topology: Topology) => Promise<T>): Promise<T> {
  const topology = await start;
  let result: T;
  try {
    result = await fn(topology);
  } catch (error) {
    for (const node of topology.nodes) node.kill();
    throw error;
  }
  const closed = await Promise.allSettled(topology.nodes.map((node) => node.close()));
  const failed = closed.find((c): c is PromiseRejectedResult => c.status === 'rejected');
  if (failed) throw failed.reason;
  return result;
}
