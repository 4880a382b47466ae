import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { MikroOrmModule } from '@mikro-orm/nestjs';
import { EntityManager, MikroORM, PostgreSqlDriver, RequestContext } from '@mikro-orm/postgresql';
import type { INestApplicationContext } from '@nestjs/common';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { Test } from '@nestjs/testing';
import type { Queue } from 'bullmq';
import {
  OUTBOX_QUEUE,
  OutboxDeadLetterNotFoundError,
  OutboxDeadLetters,
  OutboxEvent,
  OutboxModule,
  OutboxMonitor,
  OutboxService,
  currentMessage,
  outboxEntities,
  outboxSchemaSql,
  type DeadLetter,
} from 'nest-outbox';
import { freshDatabase, withConnection } from './support/database.js';
import { REDIS_URL, removePrefix, uniquePrefix } from './support/redis.js';
import { waitUntil } from './support/wait.js';

@OutboxEvent('test.parcel-shipped.v1')
class ParcelShipped {
  constructor(readonly parcelId: string) {}
}

@OutboxEvent('test.parcel-lost.v1')
class ParcelLost {
  constructor(readonly parcelId: string) {}
}

/** Handlers named here throw, as if the service they call were down, until a test removes them. */
const broken = new Set<string>();
/** How often each handler's `handle` was entered, whatever the outcome. */
const runs = new Map<string, number>();

async function handleAs(em: EntityManager, handler: string): Promise<void> {
  runs.set(handler, (runs.get(handler) ?? 0) + 1);
  if (broken.has(handler)) throw new Error(`${handler}: carrier API unavailable`);
  await em.execute('insert into effect (message_id, handler) values (?, ?)', [
    currentMessage()!.headers.messageId,
    handler,
  ]);
}

// Listed before NotifyCarrier, so it runs (and succeeds) first on each ParcelShipped.
@EventsHandler(ParcelShipped)
class CountShipment implements IEventHandler<ParcelShipped> {
  constructor(private readonly em: EntityManager) {}

  handle(): Promise<void> {
    return handleAs(this.em, 'CountShipment');
  }
}

@EventsHandler(ParcelShipped)
class NotifyCarrier implements IEventHandler<ParcelShipped> {
  constructor(private readonly em: EntityManager) {}

  handle(): Promise<void> {
    return handleAs(this.em, 'NotifyCarrier');
  }
}

@EventsHandler(ParcelLost)
class ReportLoss implements IEventHandler<ParcelLost> {
  constructor(private readonly em: EntityManager) {}

  handle(): Promise<void> {
    return handleAs(this.em, 'ReportLoss');
  }
}

const SHIPPED = 'test.parcel-shipped.v1';
const LOST = 'test.parcel-lost.v1';

describe('dead letters: list, retry and discard messages whose handlers gave up', () => {
  const prefix = uniquePrefix('dead-letters');
  let app: INestApplicationContext;
  let orm: MikroORM;
  let deadLetters: OutboxDeadLetters;
  let queue: Queue;

  const sql = (query: string, params: unknown[] = []) => orm.em.getConnection().execute(query, params);
  const effects = async (messageId: string) => {
    const rows = await sql('select handler, count(*)::int as n from effect where message_id = ? group by handler', [
      messageId,
    ]);
    return Object.fromEntries(rows.map((row) => [row.handler, row.n]));
  };
  const stateOf = async (messageId: string) => (await queue.getJob(messageId))?.getState() ?? 'gone';
  /** Nothing waiting, running or in backoff: every message has either completed or become a dead letter. */
  const quiet = async () => {
    const { queue: counts } = await app.get(OutboxMonitor).snapshot();
    return counts.waiting + counts.active + counts.delayed === 0;
  };

  /** Writes events through the outbox, as an application would, and returns their message ids. */
  async function publish(...events: object[]): Promise<string[]> {
    const outbox = app.get(OutboxService);
    return RequestContext.create(orm.em, async () => {
      const ids = events.map((event) => outbox.publish(event, { headers: { tenant: 'acme' } }));
      await orm.em.flush();
      return ids;
    });
  }

  async function untilDead(ids: string[]): Promise<DeadLetter[]> {
    await waitUntil(
      `${ids.length} dead letter(s)`,
      async () => (await Promise.all(ids.map(stateOf))).every((state) => state === 'failed') && quiet(),
    );
    return deadLetters.list();
  }

  beforeAll(async () => {
    const clientUrl = await freshDatabase('dead_letters');
    await withConnection(clientUrl, async (execute) => {
      for (const statement of outboxSchemaSql()) await execute(statement);
      await execute('create table effect (id serial primary key, message_id uuid not null, handler text not null)');
    });
    const moduleRef = await Test.createTestingModule({
      imports: [
        MikroOrmModule.forRoot({
          driver: PostgreSqlDriver,
          clientUrl,
          entities: outboxEntities(),
          registerRequestContext: false,
        }),
        OutboxModule.forRoot({
          service: 'shipping',
          redis: REDIS_URL,
          prefix,
          relay: { intervalMs: 50 },
          worker: { attempts: 2, backoff: { type: 'fixed', delayMs: 10 } },
          retention: { enabled: false },
        }),
      ],
      providers: [CountShipment, NotifyCarrier, ReportLoss],
    }).compile();
    // Dead letters are logged as errors by design; they would only bury real failures here.
    moduleRef.useLogger(false);
    app = await moduleRef.init();
    orm = app.get(MikroORM);
    deadLetters = app.get(OutboxDeadLetters);
    queue = app.get<Queue>(OUTBOX_QUEUE);
  });

  beforeEach(async () => {
    broken.clear();
    runs.clear();
    // Raw BullMQ, not the service under test: each test starts with an empty failed set.
    await queue.clean(0, 100_000, 'failed');
  });

  afterAll(async () => {
    await app?.close();
    await removePrefix(prefix);
  });

  it('a message whose handler keeps failing becomes a dead letter after the configured attempts, naming the handler', async () => {
    broken.add('NotifyCarrier');
    const [id] = await publish(new ParcelShipped('p1'));

    const [letter, ...others] = await untilDead([id]);
    expect(others).toEqual([]);
    expect(letter).toMatchObject({
      messageId: id,
      type: SHIPPED,
      service: 'shipping',
      reason: 'handler-failed',
      attempts: 2,
    });
    expect(letter.handlers).toEqual([
      {
        name: 'NotifyCarrier',
        error: 'NotifyCarrier: carrier API unavailable',
        attempts: 2,
        firstFailedAt: expect.any(Date),
        lastFailedAt: expect.any(Date),
      },
    ]);
    expect(letter.error).toMatch(
      /^Handler NotifyCarrier failed on test\.parcel-shipped\.v1 \(message .*\): NotifyCarrier: carrier API unavailable$/,
    );
    expect(letter.firstFailedAt).toBeInstanceOf(Date);
    expect(letter.lastFailedAt.getTime()).toBeGreaterThan(letter.firstFailedAt.getTime());
    expect(letter.headers).toMatchObject({ messageId: id, correlationId: id, custom: { tenant: 'acme' } });
    // The sibling succeeded on the first attempt and was skipped on the second.
    expect(Object.fromEntries(runs)).toEqual({ CountShipment: 1, NotifyCarrier: 2 });
    expect(await effects(id)).toEqual({ CountShipment: 1 });
  });

  it('retry gives a dead letter its attempts again, and runs only the handlers that have not succeeded', async () => {
    broken.add('NotifyCarrier');
    const [id] = await publish(new ParcelShipped('p2'));
    const [before] = await untilDead([id]);

    // Still broken: the retried message gets the full 2 attempts again, not 1 (attempts reset).
    await deadLetters.retry(id);
    const failedAgain = async () =>
      (await stateOf(id)) === 'failed' && (await deadLetters.list())[0].lastFailedAt > before.lastFailedAt;
    await waitUntil('the retried message failed again', failedAgain);
    const [again] = await deadLetters.list();
    expect(again).toMatchObject({ messageId: id, attempts: 2 });
    expect(again.handlers.map((handler) => [handler.name, handler.attempts])).toEqual([['NotifyCarrier', 4]]);
    expect(Object.fromEntries(runs)).toEqual({ CountShipment: 1, NotifyCarrier: 4 });

    broken.delete('NotifyCarrier');
    await deadLetters.retry(id);
    await waitUntil('the retried message handled', async () => (await stateOf(id)) === 'completed');
    expect(await effects(id)).toEqual({ CountShipment: 1, NotifyCarrier: 1 });
    expect(Object.fromEntries(runs)).toEqual({ CountShipment: 1, NotifyCarrier: 5 });
    expect(await deadLetters.list()).toEqual([]);
  });

  it('filters by type and handler, and pages with offset and limit', async () => {
    broken.add('NotifyCarrier').add('ReportLoss');
    const ids = await publish(new ParcelShipped('p3'), new ParcelLost('p4'), new ParcelLost('p5'));
    const all = await untilDead(ids);
    expect(all.map((letter) => letter.messageId).sort()).toEqual([...ids].sort());

    const lost = await deadLetters.list({ type: LOST });
    expect(lost.map((letter) => letter.messageId).sort()).toEqual([ids[1], ids[2]].sort());
    expect(lost.every((letter) => letter.handlers.map((handler) => handler.name).join() === 'ReportLoss')).toBe(true);
    expect((await deadLetters.list({ handler: 'NotifyCarrier' })).map((letter) => letter.messageId)).toEqual([ids[0]]);
    expect(await deadLetters.list({ type: SHIPPED, handler: 'ReportLoss' })).toEqual([]);

    const firstTwo = await deadLetters.list({ limit: 2 });
    const rest = await deadLetters.list({ offset: 2, limit: 5 });
    expect(firstTwo).toHaveLength(2);
    expect([...firstTwo, ...rest].map((letter) => letter.messageId)).toEqual(all.map((letter) => letter.messageId));
    const secondLost = await deadLetters.list({ handler: 'ReportLoss', offset: 1, limit: 5 });
    expect(secondLost.map((letter) => letter.messageId)).toEqual([lost[1].messageId]);
  });

  it('retryAll and discardAll act only on the dead letters that match', async () => {
    broken.add('NotifyCarrier').add('ReportLoss');
    const [shipped, lost1, lost2] = await publish(new ParcelShipped('p6'), new ParcelLost('p7'), new ParcelLost('p8'));
    await untilDead([shipped, lost1, lost2]);

    broken.delete('ReportLoss');
    expect(await deadLetters.retryAll({ handler: 'ReportLoss' })).toBe(2);
    await waitUntil(
      'both lost parcels handled',
      async () => (await stateOf(lost1)) === 'completed' && (await stateOf(lost2)) === 'completed',
    );
    expect([await effects(lost1), await effects(lost2)]).toEqual([{ ReportLoss: 1 }, { ReportLoss: 1 }]);
    expect((await deadLetters.list()).map((letter) => letter.messageId)).toEqual([shipped]);

    expect(await deadLetters.discardAll({ type: LOST })).toBe(0);
    expect(await deadLetters.discardAll({ type: SHIPPED })).toBe(1);
    expect(await stateOf(shipped)).toBe('gone');
    expect(await deadLetters.list()).toEqual([]);
    expect(await deadLetters.retryAll()).toBe(0);
  });

  it('discard removes one dead letter for good; the handler never runs again', async () => {
    broken.add('ReportLoss');
    const [id] = await publish(new ParcelLost('p9'));
    await untilDead([id]);

    await deadLetters.discard(id);
    expect(await stateOf(id)).toBe('gone');
    expect(await deadLetters.list()).toEqual([]);
    expect(runs.get('ReportLoss')).toBe(2);
    await expect(deadLetters.discard(id)).rejects.toBeInstanceOf(OutboxDeadLetterNotFoundError);
  });

  it('an id that is not a dead letter is a clear error', async () => {
    const unknown = randomUUID();
    await expect(deadLetters.retry(unknown)).rejects.toThrow(new OutboxDeadLetterNotFoundError(unknown, 'unknown'));
    await expect(deadLetters.discard(unknown)).rejects.toThrow(`No dead letter has id "${unknown}"`);

    const [handled] = await publish(new ParcelLost('p10'));
    await waitUntil('the message handled', async () => (await stateOf(handled)) === 'completed');
    await expect(deadLetters.retry(handled)).rejects.toThrow(
      `No dead letter has id "${handled}": the message is completed, not failed.`,
    );
    await expect(deadLetters.discard(handled)).rejects.toBeInstanceOf(OutboxDeadLetterNotFoundError);
    expect(await stateOf(handled)).toBe('completed');
  });

  it('a message that cannot be read is a dead letter without a handler, after one attempt', async () => {
    const id = randomUUID();
    // Only the relay should add jobs; a foreign job is what an unreadable message looks like.
    await queue.add('foreign.job', { nope: true }, { jobId: id, attempts: 2, removeOnFail: false });

    const [letter] = await untilDead([id]);
    expect(letter).toMatchObject({
      messageId: id,
      type: 'foreign.job',
      reason: 'unreadable',
      handlers: [],
      attempts: 1,
      headers: null,
    });
    expect(letter.error).toContain('is not an outbox message');
    expect(await deadLetters.list({ handler: 'ReportLoss' })).toEqual([]);
  });
});
