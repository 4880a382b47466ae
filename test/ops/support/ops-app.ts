import { MikroOrmModule } from '@mikro-orm/nestjs';
import { EntityManager, MikroORM, PostgreSqlDriver, RequestContext } from '@mikro-orm/postgresql';
import type { DynamicModule, INestApplication, Type } from '@nestjs/common';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { Test } from '@nestjs/testing';
import {
  OutboxEvent,
  OutboxModule,
  OutboxService,
  currentMessage,
  outboxEntities,
  outboxSchemaSql,
  type OutboxModuleOptions,
} from 'nest-outbox';
import { withConnection } from '../../support/database.js';
import { REDIS_URL } from '../../support/redis.js';

@OutboxEvent('ops.parcel-shipped')
export class ParcelShipped {
  constructor(
    readonly parcelId: string,
    readonly note: string,
  ) {}
}

/** Handlers named here throw, as if what they call were down. */
export const broken = new Set<string>();

async function effect(em: EntityManager, handler: string): Promise<void> {
  if (broken.has(handler)) throw new Error(`${handler}: <carrier> API unavailable`);
  await em.execute('insert into effect (message_id, handler) values (?, ?)', [
    currentMessage()!.headers.messageId,
    handler,
  ]);
}

@EventsHandler(ParcelShipped)
export class CountShipment implements IEventHandler<ParcelShipped> {
  constructor(private readonly em: EntityManager) {}
  handle(): Promise<void> {
    return effect(this.em, 'CountShipment');
  }
}

@EventsHandler(ParcelShipped)
export class NotifyCarrier implements IEventHandler<ParcelShipped> {
  constructor(private readonly em: EntityManager) {}
  handle(): Promise<void> {
    return effect(this.em, 'NotifyCarrier');
  }
}

/** Creates the outbox tables and the handlers' effect table. */
export async function prepareOpsDatabase(url: string): Promise<void> {
  await withConnection(url, async (execute) => {
    for (const statement of outboxSchemaSql()) await execute(statement);
    await execute('create table effect (id serial primary key, message_id uuid not null, handler text not null)');
  });
}

export interface OpsAppSpec {
  databaseUrl: string;
  outbox: Partial<OutboxModuleOptions> & { prefix: string };
  imports?: DynamicModule[];
  controllers?: Type<unknown>[];
  handlers?: Type<unknown>[];
  /** The app's global prefix (`app.setGlobalPrefix`). */
  globalPrefix?: string;
}

export interface OpsApp {
  app: INestApplication;
  url: string;
  orm: MikroORM;
  publish(...events: object[]): Promise<string[]>;
  /** Publishes one event with an ordering key. */
  publishKeyed(event: object, key: string): Promise<string>;
  close(): Promise<void>;
}

/** A small service over HTTP with the outbox, the test's handlers and the given ops modules. */
export async function startOpsApp(spec: OpsAppSpec): Promise<OpsApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      MikroOrmModule.forRoot({
        driver: PostgreSqlDriver,
        clientUrl: spec.databaseUrl,
        entities: outboxEntities(),
        registerRequestContext: false,
      }),
      OutboxModule.forRoot({
        service: 'shipping',
        redis: REDIS_URL,
        relay: { intervalMs: 50 },
        worker: { attempts: 1 },
        retention: { enabled: false },
        ...spec.outbox,
      }),
      ...(spec.imports ?? []),
    ],
    controllers: spec.controllers ?? [],
    providers: spec.handlers ?? [CountShipment, NotifyCarrier],
  }).compile();
  // Dead letters and failing health checks are logged as errors by design; here they would only be noise.
  moduleRef.useLogger(false);
  const app = moduleRef.createNestApplication({ logger: false });
  if (spec.globalPrefix) app.setGlobalPrefix(spec.globalPrefix);
  await app.listen(0, '127.0.0.1');
  const orm = app.get<MikroORM>(MikroORM);
  return {
    app,
    url: await app.getUrl(),
    orm,
    publish: (...events) =>
      RequestContext.create(orm.em, async () => {
        const outbox = app.get(OutboxService);
        const ids = events.map((event) => outbox.publish(event));
        await orm.em.flush();
        return ids;
      }),
    publishKeyed: (event, key) =>
      RequestContext.create(orm.em, async () => {
        const id = app.get(OutboxService).publish(event, { key });
        await orm.em.flush();
        return id;
      }),
    close: () => app.close(),
  };
}
