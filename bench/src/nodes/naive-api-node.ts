import { Queue } from 'bullmq';
import { BenchAggregate } from '../bench.app.js';
import { NAIVE_QUEUE, jobFor, redisConnection } from '../bullmq-jobs.js';
import { liveHeapMB, now } from '../harness.js';
import type { NodeRole } from './node-role.js';
import type { NodeConfig, NodeSpec } from './protocol.js';
import { plainOrm } from './orm.js';
import { runLoad } from './writers.js';

/**
 * Naive dual write, the producer: what a service without an outbox does — commit the aggregate,
 * then `queue.add` each of its events (lost if the process dies in between; that is the point
 * of an outbox, and the price of this baseline is zero rows). Jobs are the relay's jobs.
 */
export async function startNaiveApiNode(
  config: NodeConfig,
  spec: Extract<NodeSpec, { kind: 'naive-api' }>,
): Promise<NodeRole> {
  const orm = await plainOrm(config.databaseUrl, spec.poolMax);
  const queue = new Queue(NAIVE_QUEUE, { connection: redisConnection(config.redisUrl), prefix: config.prefix });
  await queue.waitUntilReady();
  return {
    bootedAt: now(),
    liveHeapMB: liveHeapMB(),
    write: (load, record) =>
      runLoad(load, record, async (n) => {
        const em = orm.em.fork();
        const startedAt = now();
        const aggregate = BenchAggregate.create(n, 1, startedAt);
        em.persist(aggregate);
        await em.flush();
        const committedAt = now();
        for (const event of aggregate.getUncommittedEvents()) {
          const job = jobFor(event, aggregate.id);
          await queue.add(job.name, job.data, job.opts);
        }
        aggregate.uncommit();
        return { id: aggregate.id, startedAt, committedAt };
      }),
    async close() {
      await queue.close();
      await orm.close();
    },
  };
}
