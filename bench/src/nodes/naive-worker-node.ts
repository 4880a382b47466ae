import { RequestContext } from '@mikro-orm/core';
import { Worker } from 'bullmq';
import type { OutboxJobData } from 'nest-outbox';
import { RecordHandled, SomethingHappened } from '../bench.app.js';
import { INBOX_MARK_SQL, NAIVE_QUEUE, redisConnection } from '../bullmq-jobs.js';
import { WORKER_CONCURRENCY, liveHeapMB, now } from '../harness.js';
import { handledLog } from './handled-log.js';
import type { NodeRole } from './node-role.js';
import type { NodeConfig, NodeSpec } from './protocol.js';
import { plainOrm } from './orm.js';

/**
 * Naive dual write, the consumer: a BullMQ worker doing for each job what the outbox's worker
 * does — rebuild the event, then run the handler in a transaction with its inbox mark — written
 * by hand, as a user without the library would.
 */
export async function startNaiveWorkerNode(
  config: NodeConfig,
  spec: Extract<NodeSpec, { kind: 'naive-worker' }>,
): Promise<NodeRole> {
  const orm = await plainOrm(config.databaseUrl, spec.poolMax);
  const handler = new RecordHandled();
  const worker = new Worker<OutboxJobData>(
    NAIVE_QUEUE,
    async (job) => {
      const { payload, headers } = job.data;
      const event = Object.assign(Object.create(SomethingHappened.prototype) as SomethingHappened, JSON.parse(payload));
      await RequestContext.create(orm.em, () =>
        orm.em.transactional(async (em) => {
          const fresh = await em.execute(INBOX_MARK_SQL, [headers.messageId, RecordHandled.name]);
          if (fresh.length === 1) handler.handle(event);
        }),
      );
      handledLog.committed(now());
    },
    { connection: redisConnection(config.redisUrl), prefix: config.prefix, concurrency: WORKER_CONCURRENCY },
  );
  await worker.waitUntilReady();
  return {
    bootedAt: now(),
    liveHeapMB: liveHeapMB(),
    async close() {
      await worker.close();
      await orm.close();
    },
  };
}
