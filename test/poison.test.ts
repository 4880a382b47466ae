import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { Queue } from 'bullmq';
import { OUTBOX_QUEUE, type OutboxJobData } from 'nest-outbox';
import { newMessageId } from '../libs/outbox/src/message/message-id.js';
import { freshDatabase } from './support/database.js';
import { prepareFixtureDatabase, startFixtureApp, type FixtureApp } from './support/fixture.js';
import { removePrefix, uniquePrefix, REDIS_URL } from './support/redis.js';
import { waitUntil } from './support/wait.js';

describe('poison messages: dead letter at once, clear error, worker alive, nothing polluted', () => {
  const prefix = uniquePrefix('poison');
  let app: FixtureApp;
  let queue: Queue<OutboxJobData>;

  /** Writes a row as a broken producer or a hand-edited table would. */
  async function insertRow(type: string, payload: string): Promise<string> {
    const id = newMessageId();
    const headers = JSON.stringify({ messageId: id, correlationId: id, occurredAt: new Date().toISOString() });
    await app.sql(
      'insert into outbox_message (id, type, payload, headers, occurred_at) values (?, ?, ?::jsonb, ?::jsonb, now())',
      [id, type, payload, headers],
    );
    return id;
  }

  async function deadLetter(id: string) {
    await waitUntil(`job ${id} failed`, async () => (await queue.getJobState(id)) === 'failed');
    return (await queue.getJob(id))!;
  }

  beforeAll(async () => {
    const url = await freshDatabase('poison');
    await prepareFixtureDatabase(url);
    app = await startFixtureApp(url, {
      redis: REDIS_URL,
      prefix,
      worker: { attempts: 4, backoff: { type: 'fixed', delayMs: 10 } },
    });
    queue = app.app.get<Queue<OutboxJobData>>(OUTBOX_QUEUE);
  });

  afterAll(async () => {
    await app?.close();
    await removePrefix(prefix);
  });

  it('an event type no service subscribes to is not lost silently: its row is marked unrouted and counted', async () => {
    const id = await insertRow('billing.invoice-sent.v9', '{"invoice": 1}');
    await waitUntil(
      'the row dispatched',
      async () =>
        (await app.sql('select dispatched_at from outbox_message where id = ?', [id]))[0].dispatched_at !== null,
    );
    expect(await app.sql('select routed_to from outbox_message where id = ?', [id])).toEqual([{ routed_to: [] }]);
    expect(await queue.getJob(id)).toBeUndefined();
    expect((await app.monitor.snapshot()).unrouted).toBeGreaterThanOrEqual(1);
  });

  it('a job of a type this process has no handler for, naming no handlers it needs, fails without retry', async () => {
    const id = newMessageId();
    const headers = { messageId: id, correlationId: id, occurredAt: new Date().toISOString() };
    const data = { type: 'billing.invoice-sent.v9', payload: '{}', headers, aggregateType: null, aggregateId: null };
    await queue.add('billing.invoice-sent.v9', data, { jobId: id, attempts: 4 });
    const job = await deadLetter(id);
    expect(job.attemptsMade).toBe(1);
    expect(job.failedReason).toMatch(/Unknown event type "billing\.invoice-sent\.v9".*no @EventsHandler/);
  });

  it.each([
    ['__proto__', '{"accountId": "p", "__proto__": {"polluted": "yes"}}'],
    ['constructor', '{"accountId": "p", "constructor": {"polluted": "yes"}}'],
    ['prototype', '{"accountId": "p", "constructor": {"prototype": {"polluted": "yes"}}}'],
  ])('a payload carrying %s fails without retry and pollutes no prototype', async (key, payload) => {
    const job = await deadLetter(await insertRow('test.deposited.v1', payload));
    expect(job.attemptsMade).toBe(1);
    expect(job.failedReason).toContain(
      `Payload of test.deposited.v1 cannot be read: it carries the forbidden key "${key}"`,
    );
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted')).toBe(false);
  });

  it('a malformed payload fails without retry with the parse error', async () => {
    const id = newMessageId();
    await queue.add(
      'test.deposited.v1',
      {
        type: 'test.deposited.v1',
        payload: '{"accountId": "p", "amount": ',
        headers: { messageId: id, correlationId: id, occurredAt: new Date().toISOString() },
        aggregateType: null,
        aggregateId: null,
      },
      { jobId: id, attempts: 4 },
    );
    const job = await deadLetter(id);
    expect(job.attemptsMade).toBe(1);
    expect(job.failedReason).toMatch(/Payload of test\.deposited\.v1 cannot be read: it is not valid JSON/);
  });

  it('a job that is not an outbox message fails without retry, saying so', async () => {
    const job = await queue.add('stray', { hello: 'world' } as unknown as OutboxJobData, {
      jobId: 'stray-job',
      attempts: 4,
    });
    const failed = await deadLetter(job.id!);
    expect(failed.attemptsMade).toBe(1);
    expect(failed.failedReason).toMatch(/is not an outbox message/);
  });

  it('the worker is still alive: a good message is handled afterwards', async () => {
    const id = await insertRow('test.deposited.v1', '{"accountId": "good", "amount": 1, "sequence": 1}');
    await waitUntil('good message handled', async () => (await queue.getJobState(id)) === 'completed');
    expect(await app.sql('select handler from effect where message_id = ?', [id])).toEqual([
      { handler: 'CountDeposits' },
    ]);
  });
});
