import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { EntityManager } from '@mikro-orm/postgresql';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import type { Queue } from 'bullmq';
import { OUTBOX_QUEUE, OutboxEvent, OutboxRetention, currentMessage, type OutboxJobData } from 'nest-outbox';
import { recordEffect, startFixtureApp, type FixtureApp } from '../support/fixture.js';
import { REDIS_URL, removePrefix, uniquePrefix } from '../support/redis.js';
import { publish, serviceDatabase } from '../support/topology.js';
import { waitUntil } from '../support/wait.js';

@OutboxEvent('topo.transfer-booked.v1')
class TransferBooked {
  constructor(readonly transferId: string) {}
}

/** What PostToBank does on its next runs: wait for the test to open a gate, or fail. */
const bank: { gate?: Promise<void>; failing: boolean; entered: Set<string> } = { failing: false, entered: new Set() };

// Runs first (first by name, the order handlers run in, and first listed): its inbox mark is
// committed while its sibling is still running or backing off.
@EventsHandler(TransferBooked)
class BookEntry implements IEventHandler<TransferBooked> {
  constructor(private readonly em: EntityManager) {}
  handle(): Promise<void> {
    return recordEffect(this.em, 'BookEntry');
  }
}

@EventsHandler(TransferBooked)
class PostToBank implements IEventHandler<TransferBooked> {
  constructor(private readonly em: EntityManager) {}
  async handle(): Promise<void> {
    bank.entered.add(currentMessage()!.headers.messageId);
    await bank.gate;
    if (bank.failing) throw new Error('bank API down');
    await recordEffect(this.em, 'PostToBank');
  }
}

/**
 * An inbox mark older than `inboxAfterSeconds` stays while its message's job may still run:
 * deleting it would let a sibling handler that already succeeded run again. Covered here for a
 * job that is running (active) and one that failed and is waiting for its retry (backing off);
 * `test/retention.test.ts` covers a delayed job and a dead letter.
 */
describe('retention keeps the inbox marks of a message whose job may still run', () => {
  const prefix = uniquePrefix('retention-live');
  let orders: FixtureApp;
  let ledger: FixtureApp;
  let retention: OutboxRetention;
  let queue: Queue<OutboxJobData>;

  const effects = async (id: string) =>
    Object.fromEntries(
      (await ledger.sql('select handler, count(*)::int as n from effect where message_id = ? group by 1', [id])).map(
        (row) => [row.handler, row.n],
      ),
    );
  const marks = async (id: string) =>
    (await ledger.sql('select handler from inbox_message where message_id = ? order by 1', [id])).map(
      (row) => row.handler as string,
    );
  /** Makes every mark of the message a day old: past `inboxAfterSeconds`, so only its job's state keeps it. */
  const age = (id: string) =>
    ledger.sql(`update inbox_message set processed_at = now() - interval '1 day' where message_id = ?`, [id]);

  beforeAll(async () => {
    ledger = await startFixtureApp(
      await serviceDatabase('topo_retention_ledger'),
      {
        redis: REDIS_URL,
        prefix,
        service: 'ledger',
        relay: { enabled: false },
        // A retry an hour away keeps the failed job backing off for the whole test; marks must
        // outlive that retry window to be deletable at all.
        worker: { attempts: 2, backoff: { type: 'fixed', delayMs: 3_600_000, jitter: 0 } },
        retention: { enabled: false, inboxAfterSeconds: 7200 },
      },
      [BookEntry, PostToBank],
    );
    orders = await startFixtureApp(
      await serviceDatabase('topo_retention_orders'),
      { redis: REDIS_URL, prefix, service: 'orders', worker: { enabled: false }, retention: { enabled: false } },
      [],
    );
    retention = ledger.app.get(OutboxRetention);
    queue = ledger.app.get<Queue<OutboxJobData>>(OUTBOX_QUEUE);
  });

  beforeEach(() => {
    bank.gate = undefined;
    bank.failing = false;
  });

  afterAll(async () => {
    await Promise.all([orders?.close(), ledger?.close()]);
    await removePrefix(prefix);
  });

  it('while the job is active (a sibling still running)', async () => {
    let open!: () => void;
    bank.gate = new Promise((resolve) => (open = resolve));
    const [id] = await publish(orders, new TransferBooked('t1'));
    await waitUntil('BookEntry done, PostToBank running', async () => bank.entered.has(id));
    expect(await queue.getJobState(id)).toBe('active');
    expect(await marks(id)).toEqual(['BookEntry']);

    await age(id);
    expect(await retention.runOnce()).toEqual({ outboxDeleted: 0, inboxDeleted: 0 });
    expect(await marks(id)).toEqual(['BookEntry']);

    open();
    await waitUntil('the job completed', async () => (await queue.getJobState(id)) === 'completed');
    await age(id);
    // Completed: the job can no longer run, so its old marks may go.
    expect(await retention.runOnce()).toEqual({ outboxDeleted: 0, inboxDeleted: 2 });
    expect(await effects(id)).toEqual({ BookEntry: 1, PostToBank: 1 });
  });

  it('while the job is backing off before its retry (a sibling failed)', async () => {
    bank.failing = true;
    const [id] = await publish(orders, new TransferBooked('t2'));
    await waitUntil('the first attempt failed, the retry an hour away', async () => {
      const job = await queue.getJob(id);
      return job !== undefined && job.attemptsMade === 1 && (await job.isDelayed());
    });
    expect(await marks(id)).toEqual(['BookEntry']);

    await age(id);
    expect(await retention.runOnce()).toEqual({ outboxDeleted: 0, inboxDeleted: 0 });
    expect(await marks(id)).toEqual(['BookEntry']);

    // The retry comes (now rather than in an hour): the kept mark makes it skip BookEntry.
    bank.failing = false;
    await (await queue.getJob(id))!.promote();
    await waitUntil('the job completed', async () => (await queue.getJobState(id)) === 'completed');
    expect(await effects(id)).toEqual({ BookEntry: 1, PostToBank: 1 });

    await age(id);
    expect(await retention.runOnce()).toEqual({ outboxDeleted: 0, inboxDeleted: 2 });
  });
});
