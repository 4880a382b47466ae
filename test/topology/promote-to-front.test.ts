import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Worker } from 'bullmq';
import { promoteToFront } from '../../libs/outbox/src/consume/promote-to-front.js';
import { resolveOutboxOptions } from '../../libs/outbox/src/options/resolve-options.js';
import { OutboxQueues } from '../../libs/outbox/src/routing/outbox-queues.js';
import { REDIS_URL, removePrefix, uniquePrefix } from '../support/redis.js';

/**
 * A parked message whose turn came goes to the front of its queue (real Redis, BullMQ's own
 * lists): behind a backlog, BullMQ's plain promote would make it wait for every job before it.
 */
describe('promoteToFront', () => {
  const prefix = uniquePrefix('promote');
  let queues: OutboxQueues;

  beforeAll(() => {
    queues = new OutboxQueues(resolveOutboxOptions({ service: 'ledger', redis: REDIS_URL, prefix }));
  });

  afterAll(async () => {
    await queues.close();
    await removePrefix(prefix);
  });

  it('a delayed job is taken before the jobs already waiting; a job no longer delayed is left alone', async () => {
    const queue = queues.own();
    await queue.addBulk(['a', 'b', 'c'].map((id) => ({ name: 'm', data: {} as never, opts: { jobId: id } })));
    await queue.add('m', {} as never, { jobId: 'parked', delay: 300_000 });
    await promoteToFront(queues, 'parked');
    await promoteToFront(queues, 'b'); // waiting, not delayed: stays where it is
    // The order a worker takes them in.
    const worker = new Worker(queue.name, null, { connection: { url: REDIS_URL }, prefix, autorun: false });
    try {
      const taken: Array<string | undefined> = [];
      for (let i = 0; i < 4; i++) taken.push((await worker.getNextJob(`token-${i}`, { block: false }))?.id);
      expect(taken).toEqual(['parked', 'a', 'b', 'c']);
    } finally {
      await worker.close(true);
    }
  });
});
