import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { RequestContext } from '@mikro-orm/core';
import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable } from '@nestjs/common';
import {
  CommandHandler,
  CqrsModule,
  EventBus,
  EventPublisher,
  EventsHandler,
  Publishable,
  Saga,
  AggregateRoot,
  ofType,
  type ICommandHandler,
  type IEvent,
  type IEventHandler,
} from '@nestjs/cqrs';
import { currentMessage, OutboxSetupError } from 'nest-outbox';
import { map, type Observable } from 'rxjs';
import { Meter, MeterTicked, PATTERN_ENTITIES, PATTERN_TABLES } from './support/cqrs-patterns.js';
import { freshDatabase, withConnection } from './support/database.js';
import {
  Account,
  CAPTURE_ONLY,
  Deposited,
  prepareFixtureDatabase,
  startFixtureApp,
  type FixtureApp,
} from './support/fixture.js';
import { REDIS_URL, removePrefix, uniquePrefix } from './support/redis.js';
import { waitUntil } from './support/wait.js';

interface Row {
  id: string;
  type: string;
  payload: Record<string, any>;
  headers: Record<string, any>;
  aggregate_type: string | null;
  aggregate_id: string | null;
}

/** Every run of the handler, and whether it ran as an outbox delivery (with its message) or in memory. */
const runs: Array<{ accountId: string; viaOutbox: boolean }> = [];

@EventsHandler(Deposited)
class RecordDeposit implements IEventHandler<Deposited> {
  handle(event: Deposited): void {
    runs.push({ accountId: event.accountId, viaOutbox: currentMessage() !== undefined });
  }
}

@EventsHandler(MeterTicked)
class IgnoreTicks implements IEventHandler<MeterTicked> {
  handle(): void {}
}

/** Not an entity: a domain object whose events cqrs publishes through @Publishable, with no dispatcher. */
@Publishable()
class Wallet extends AggregateRoot {
  constructor(readonly owner: string) {
    super();
  }

  topUp(amount: number): void {
    this.apply(new Deposited(this.owner, amount, 1));
  }
}

class NoteDeposit {
  constructor(readonly accountId: string) {}
}

/** What the saga turned into commands, in order. */
const noted: string[] = [];

@CommandHandler(NoteDeposit)
class NoteDepositHandler implements ICommandHandler<NoteDeposit> {
  async execute(command: NoteDeposit): Promise<void> {
    noted.push(command.accountId);
  }
}

@Injectable()
class DepositSaga {
  @Saga()
  deposited = (events$: Observable<IEvent>): Observable<NoteDeposit> =>
    events$.pipe(
      ofType(Deposited),
      map((event) => new NoteDeposit(event.accountId)),
    );
}

const PROVIDERS = [RecordDeposit, IgnoreTicks, NoteDepositHandler, DepositSaga];

describe('the cqrs EventBus goes through the outbox', () => {
  let databaseUrl: string;
  const prefix = uniquePrefix('event-bus');
  let fixture: FixtureApp;
  let bus: EventBus;
  let publisher: EventPublisher;
  const rows = () => fixture.sql('select * from outbox_message order by id') as Promise<Row[]>;
  const rowsOf = async (accountId: string) => (await rows()).filter((r) => r.payload.accountId === accountId);
  const fork = () => fixture.orm.em.fork() as EntityManager;
  const runsOf = (accountId: string) => runs.filter((run) => run.accountId === accountId);

  beforeAll(async () => {
    databaseUrl = await freshDatabase('event_bus');
    await prepareFixtureDatabase(databaseUrl);
    await withConnection(databaseUrl, async (execute) => {
      for (const statement of PATTERN_TABLES) await execute(statement);
    });
    fixture = await startFixtureApp(
      databaseUrl,
      { redis: REDIS_URL, prefix, worker: { backoff: { type: 'fixed', delayMs: 10 } } },
      PROVIDERS,
      [CqrsModule.forRoot()],
      PATTERN_ENTITIES,
    );
    bus = fixture.app.get(EventBus);
    publisher = fixture.app.get(EventPublisher);
  });

  afterAll(async () => {
    await fixture?.close();
    await removePrefix(prefix);
  });

  describe('EventBus.publish / publishAll', () => {
    it('inside em.transactional: rows of that transaction, handled once through the outbox', async () => {
      await fork().transactional(async (em) => {
        bus.publish(new Deposited('tx-1', 5, 1));
        await em.flush();
        expect(await em.execute("select type from outbox_message where payload->>'accountId' = 'tx-1'")).toEqual([
          { type: 'test.deposited.v1' },
        ]);
        expect(runsOf('tx-1')).toEqual([]);
      });
      await waitUntil('tx-1 handled', () => runsOf('tx-1').length > 0);
      await fixture.monitor.waitUntilSettled();
      expect(runsOf('tx-1')).toEqual([{ accountId: 'tx-1', viaOutbox: true }]);
    });

    it('a transaction that rolls back publishes nothing', async () => {
      await expect(
        fork().transactional(async (em) => {
          bus.publish(new Deposited('tx-2', 5, 1));
          await em.flush();
          throw new Error('rolled back');
        }),
      ).rejects.toThrow('rolled back');
      expect(await rowsOf('tx-2')).toEqual([]);
      expect(runsOf('tx-2')).toEqual([]);
    });

    it('publishAll writes every event, in order, under one correlation id', async () => {
      await fork().transactional(async () => {
        bus.publishAll([new Deposited('all-1', 1, 1), new Deposited('all-1', 2, 2), new Deposited('all-1', 3, 3)]);
      });
      const written = await rowsOf('all-1');
      expect(written.map((r) => r.payload.sequence)).toEqual([1, 2, 3]);
      expect(new Set(written.map((r) => r.headers.correlationId))).toEqual(new Set([written[0].id]));
    });

    it('inside a request context: written by that context’s next flush', async () => {
      await RequestContext.create(fixture.orm.em, async () => {
        bus.publish(new Deposited('rc-1', 1, 1));
        expect(await rowsOf('rc-1')).toEqual([]);
        await fixture.orm.em.flush();
      });
      expect(await rowsOf('rc-1')).toHaveLength(1);
    });

    it('outside any unit of work: refused with what to do, nothing published', () => {
      expect(() => bus.publish(new Deposited('out-1', 1, 1))).toThrow(OutboxSetupError);
      expect(() => bus.publishAll([new Deposited('out-1', 1, 1)])).toThrow(
        /EventBus\.publish\(\) writes through the outbox, and needs an EntityManager context.*em\.transactional\(\)/,
      );
      expect(runsOf('out-1')).toEqual([]);
      // commit() with nothing uncommitted publishes an empty list: nothing to refuse.
      expect(() => new Wallet('out-1').commit()).not.toThrow();
    });
  });

  describe('aggregates merged with the EventPublisher', () => {
    it('mergeObjectContext + commit() before the flush: rows with the aggregate, written by that flush', async () => {
      await fork().persist(new Account('merged-1', 'merged-1@example.com')).flush();
      const em = fork();
      const account = publisher.mergeObjectContext(await em.findOneOrFail(Account, { id: 'merged-1' }));
      account.deposit(7);
      account.deposit(8);
      account.commit();
      expect(await rowsOf('merged-1')).toEqual([]);
      await em.flush();
      const written = await rowsOf('merged-1');
      expect(written.map((r) => [r.aggregate_type, r.aggregate_id, r.payload.amount])).toEqual([
        ['Account', 'merged-1', 7],
        ['Account', 'merged-1', 8],
      ]);
      await fixture.monitor.waitUntilSettled();
      expect(runsOf('merged-1')).toEqual([
        { accountId: 'merged-1', viaOutbox: true },
        { accountId: 'merged-1', viaOutbox: true },
      ]);
    });

    it('commit() after the flush publishes nothing more: the flush already wrote the events', async () => {
      const em = fork();
      const account = publisher.mergeObjectContext(new Account('merged-2', 'merged-2@example.com'));
      account.deposit(1);
      await em.persist(account).flush();
      account.commit();
      await em.flush();
      expect(await rowsOf('merged-2')).toHaveLength(1);
    });

    it('autoCommit with a merged publisher: each applied event is written by the next flush', async () => {
      const meter = publisher.mergeObjectContext(new Meter('merged-m'));
      meter.tick();
      meter.tick();
      await fork().persist(meter).flush();
      expect(
        (await rows()).filter((r) => r.aggregate_id === 'merged-m').map((r) => [r.type, r.payload.reading]),
      ).toEqual([
        ['test.meter-ticked', 1],
        ['test.meter-ticked', 2],
      ]);
    });
  });

  it('@Publishable: commit() publishes on the EventBus, so the events join the current unit of work', async () => {
    await fork().transactional(async () => {
      const wallet = new Wallet('wallet-1');
      wallet.topUp(9);
      wallet.commit();
    });
    expect((await rowsOf('wallet-1')).map((r) => [r.aggregate_type, r.payload.amount])).toEqual([[null, 9]]);
  });

  describe('sagas', () => {
    beforeEach(() => {
      noted.length = 0;
    });

    it('see an event once its transaction committed, never before, and exactly once', async () => {
      await fork().transactional(async (em) => {
        bus.publish(new Deposited('saga-1', 1, 1));
        await em.flush();
        expect(noted).toEqual([]);
      });
      await waitUntil('saga command for saga-1', () => noted.includes('saga-1'));
      await fixture.monitor.waitUntilSettled();
      expect(noted).toEqual(['saga-1']);
    });

    it('see events applied on aggregates too, once their flush committed', async () => {
      const account = new Account('saga-2', 'saga-2@example.com');
      account.deposit(1);
      await fork().persist(account).flush();
      await waitUntil('saga command for saga-2', () => noted.includes('saga-2'));
    });

    it('never see an event whose transaction, or savepoint, rolled back', async () => {
      await fork()
        .transactional(async (em) => {
          bus.publish(new Deposited('saga-gone', 1, 1));
          await em.flush();
          throw new Error('rolled back');
        })
        .catch(() => undefined);
      await fork().transactional(async (em) => {
        await em
          .transactional(async (inner) => {
            bus.publish(new Deposited('saga-gone', 2, 2));
            await inner.flush();
            throw new Error('savepoint rolled back');
          })
          .catch(() => undefined);
        bus.publish(new Deposited('saga-kept', 1, 1));
      });
      // Events reach sagas in commit order: once the later commit's command ran, the earlier ones would have.
      await waitUntil('saga command for saga-kept', () => noted.includes('saga-kept'));
      expect(noted).toEqual(['saga-kept']);
    });
  });
});

describe('eventBus: false leaves the cqrs EventBus in memory', () => {
  let fixture: FixtureApp;

  beforeAll(async () => {
    const url = await freshDatabase('event_bus_off');
    await prepareFixtureDatabase(url);
    fixture = await startFixtureApp(url, { ...CAPTURE_ONLY, eventBus: false }, PROVIDERS, [CqrsModule.forRoot()]);
  });

  afterAll(async () => {
    await fixture?.close();
  });

  it('publish() outside a unit of work runs the handler in memory and writes no row', async () => {
    fixture.app.get(EventBus).publish(new Deposited('memory-1', 1, 1));
    await waitUntil('in-memory handler ran', () => runs.some((run) => run.accountId === 'memory-1'));
    expect(runs.filter((run) => run.accountId === 'memory-1')).toEqual([{ accountId: 'memory-1', viaOutbox: false }]);
    expect(await fixture.sql('select id from outbox_message')).toEqual([]);
  });
});
