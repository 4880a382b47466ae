import { Worker } from 'bullmq';
import type { OutboxJobData } from 'nest-outbox';
import pg from 'pg';
import { CEILING_QUEUE, redisConnection } from '../bullmq-jobs.js';
import { WORKER_CONCURRENCY, liveHeapMB, now } from '../harness.js';
import { handledLog } from './handled-log.js';
import type { NodeRole } from './node-role.js';
import type { NodeConfig, NodeSpec } from './protocol.js';

const INSERT = `insert into inbox_message (message_id, handler) values ($1, 'ceiling') on conflict do nothing`;

/**
 * Consume ceiling: the least a consumer that writes to PostgreSQL can do per job — read the
 * payload, then one plain `pg` transaction inserting one row (the inbox table, as the handler's
 * transaction does) — with the same worker concurrency. No ORM, no Nest, no handler lookup.
 * Created stopped, so the phase can take its first CPU reading before the first job.
 */
export async function startCeilingNode(
  config: NodeConfig,
  spec: Extract<NodeSpec, { kind: 'ceiling' }>,
): Promise<NodeRole> {
  const pool = new pg.Pool({ connectionString: config.databaseUrl, max: spec.poolMax });
  const worker = new Worker<OutboxJobData>(
    CEILING_QUEUE,
    async (job) => {
      JSON.parse(job.data.payload);
      const client = await pool.connect();
      try {
        await client.query('begin');
        await client.query(INSERT, [job.data.headers.messageId]);
        await client.query('commit');
      } catch (error) {
        await client.query('rollback').catch(() => undefined);
        throw error;
      } finally {
        client.release();
      }
      handledLog.committed(now());
    },
    {
      connection: redisConnection(config.redisUrl),
      prefix: config.prefix,
      concurrency: WORKER_CONCURRENCY,
      autorun: false,
    },
  );
  await worker.waitUntilReady();
  return {
    bootedAt: now(),
    liveHeapMB: liveHeapMB(),
    start: () => void worker.run(),
    async close() {
      await worker.close();
      await pool.end();
    },
  };
}
