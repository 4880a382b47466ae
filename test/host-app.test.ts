import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable, type Provider } from '@nestjs/common';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { Interval, ScheduleModule, SchedulerRegistry } from '@nestjs/schedule';
import type { Queue } from 'bullmq';
import { InjectOutboxQueue, OutboxService, type OutboxJobData } from 'nest-outbox';
import { freshDatabase } from './support/database.js';
import {
  CountDeposits,
  Deposited,
  prepareFixtureDatabase,
  recordEffect,
  startFixtureApp,
  type FixtureApp,
} from './support/fixture.js';
import { REDIS_URL, removePrefix, uniquePrefix } from './support/redis.js';
import { waitUntil } from './support/wait.js';

/** A host app's own scheduled job: it must run only when the host imported ScheduleModule itself. */
@Injectable()
class HostTicker {
  ticks = 0;

  @Interval(10)
  tick(): void {
    this.ticks++;
  }
}

/** Written as a factory provider's product: discovered by its class, not by a provider metatype. */
@EventsHandler(Deposited)
class FactoryMadeHandler implements IEventHandler<Deposited> {
  constructor(private readonly em: EntityManager) {}

  async handle(): Promise<void> {
    await recordEffect(this.em, 'FactoryMadeHandler');
  }
}

@EventsHandler(Deposited)
class ValueHandler implements IEventHandler<Deposited> {
  em: EntityManager | undefined;

  async handle(): Promise<void> {
    await recordEffect(this.em!, 'ValueHandler');
  }
}

@Injectable()
class QueueUser {
  constructor(@InjectOutboxQueue() readonly queue: Queue<OutboxJobData>) {}
}

describe('the outbox inside a host application', () => {
  let databaseUrl: string;
  const queues: string[] = [];
  let app: FixtureApp | undefined;

  function options() {
    const prefix = uniquePrefix('host');
    queues.push(prefix);
    return { redis: REDIS_URL, service: 'host', prefix, relay: { intervalMs: 25 } };
  }

  /** Publishes a message due in 150 ms: only the relay's own schedule can hand it over, so its arrival proves the schedule ran. */
  async function publishDueLater(fixture: FixtureApp): Promise<string> {
    const outbox = fixture.app.get(OutboxService);
    const em = fixture.orm.em.fork() as EntityManager;
    let id = '';
    await em.transactional(async () => {
      id = outbox.publish(new Deposited('host', 1, 1), { delay: 150 });
    });
    return id;
  }

  beforeAll(async () => {
    databaseUrl = await freshDatabase('host_app');
    await prepareFixtureDatabase(databaseUrl);
  });

  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  afterAll(async () => {
    await Promise.all(queues.map((name) => removePrefix(name)));
  });

  it("does not switch on the host's @Interval jobs when the host left ScheduleModule out, yet runs its own schedule", async () => {
    app = await startFixtureApp(databaseUrl, options(), [HostTicker, CountDeposits]);
    const id = await publishDueLater(app);
    await waitUntil('the delayed message handled through the relay schedule', async () => {
      const rows = await app!.sql('select 1 from effect where message_id = ?', [id]);
      return rows.length === 1;
    });
    // Dozens of 10 ms ticks would have run by now had the outbox started the host's scheduler.
    expect(app.app.get(HostTicker).ticks).toBe(0);
  });

  it("leaves the host's own ScheduleModule working, and registers its intervals in the host's registry", async () => {
    app = await startFixtureApp(databaseUrl, options(), [HostTicker, CountDeposits], [ScheduleModule.forRoot()]);
    await waitUntil("the host's interval ran", () => app!.app.get(HostTicker).ticks > 0);
    expect(app.app.get(SchedulerRegistry).getIntervals()).toEqual(
      expect.arrayContaining([expect.stringMatching(/^nest-outbox:relay:/)]),
    );
    const id = await publishDueLater(app);
    await waitUntil(
      'the delayed message handled',
      async () => (await app!.sql('select 1 from effect where message_id = ?', [id])).length === 1,
    );
  });

  it('finds @EventsHandler classes registered with useFactory or useValue, and runs them', async () => {
    const valueHandler = new ValueHandler();
    const providers: Provider[] = [
      {
        provide: 'factory-made',
        useFactory: (em: EntityManager) => new FactoryMadeHandler(em),
        inject: [EntityManager],
      },
      { provide: 'by-value', useValue: valueHandler },
    ];
    app = await startFixtureApp(databaseUrl, options(), providers);
    valueHandler.em = app.app.get(EntityManager);
    const outbox = app.app.get(OutboxService);
    let id = '';
    await (app.orm.em.fork() as EntityManager).transactional(async () => {
      id = outbox.publish(new Deposited('providers', 1, 1));
    });
    await waitUntil(
      'both handlers ran',
      async () => (await app!.sql('select 1 from effect where message_id = ?', [id])).length === 2,
    );
    expect(await app.sql('select handler from effect where message_id = ? order by handler', [id])).toEqual([
      { handler: 'FactoryMadeHandler' },
      { handler: 'ValueHandler' },
    ]);
  });

  it('@InjectOutboxQueue() gives the outbox queue', async () => {
    const queueOptions = options();
    app = await startFixtureApp(databaseUrl, queueOptions, [QueueUser]);
    const { queue } = app.app.get(QueueUser);
    expect(queue.name).toBe(queueOptions.service);
    expect(await queue.getJobCounts('waiting')).toEqual({ waiting: 0 });
  });
});
