import { ReflectMetadataProvider, Entity, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { PostgreSqlDriver } from '@mikro-orm/postgresql';
import { MikroOrmModule } from '@mikro-orm/nestjs';
import { EntityManager, MikroORM } from '@mikro-orm/postgresql';
import type { INestApplicationContext, ModuleMetadata, Provider } from '@nestjs/common';
import { AggregateRoot, EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { Test } from '@nestjs/testing';
import {
  OutboxEvent,
  OutboxModule,
  OutboxMonitor,
  currentMessage,
  outboxEntities,
  outboxSchemaSql,
  type OutboxModuleOptions,
} from 'nest-outbox';
import { OutboxRunner } from '../../libs/outbox/src/outbox.runner.js';
import { withConnection } from './database.js';

@OutboxEvent('test.deposited.v1')
export class Deposited {
  constructor(
    readonly accountId: string,
    readonly amount: number,
    readonly sequence: number,
  ) {}
}

/** Keeps its class name as type name, unlike Deposited. */
export class Pinged {
  constructor(
    readonly accountId: string,
    readonly note: string,
  ) {}
}

/** A test aggregate: `deposit` changes state and raises an event; `ping` only raises one. */
@Entity({ tableName: 'account' })
export class Account extends AggregateRoot {
  @PrimaryKey({ type: 'text' })
  id: string;

  @Property({ type: 'text', unique: true })
  email: string;

  @Property({ type: 'integer' })
  balance = 0;

  @Property({ type: 'integer' })
  deposits = 0;

  constructor(id: string, email: string) {
    super();
    this.id = id;
    this.email = email;
  }

  deposit(amount: number): void {
    this.balance += amount;
    this.deposits++;
    this.apply(new Deposited(this.id, amount, this.deposits));
  }

  ping(note: string): void {
    this.apply(new Pinged(this.id, note));
  }
}

/** Records one `effect` row per handler run, in the handler's transaction. */
export async function recordEffect(em: EntityManager, handler: string): Promise<void> {
  await em.execute('insert into effect (message_id, handler) values (?, ?)', [
    currentMessage()!.headers.messageId,
    handler,
  ]);
}

@EventsHandler(Deposited)
export class CountDeposits implements IEventHandler<Deposited> {
  constructor(private readonly em: EntityManager) {}

  async handle(): Promise<void> {
    await recordEffect(this.em, 'CountDeposits');
  }
}

@EventsHandler(Pinged)
export class CountPings implements IEventHandler<Pinged> {
  constructor(private readonly em: EntityManager) {}

  async handle(): Promise<void> {
    await recordEffect(this.em, 'CountPings');
  }
}

/** Creates the outbox tables and the fixture's own tables in a fresh database. */
export async function prepareFixtureDatabase(url: string): Promise<void> {
  await withConnection(url, async (execute) => {
    for (const statement of outboxSchemaSql()) await execute(statement);
    await execute(
      'create table account (id text primary key, email text not null unique, balance int not null, deposits int not null)',
    );
    await execute('create table effect (id serial primary key, message_id uuid not null, handler text not null)');
  });
}

export interface FixtureApp {
  app: INestApplicationContext;
  databaseUrl: string;
  orm: MikroORM<any>;
  monitor: OutboxMonitor;
  /** The outbox's internal runner (test hooks such as relayIdle). */
  runner: OutboxRunner;
  /** Runs SQL outside any transaction of the app. */
  sql(query: string, params?: unknown[]): Promise<any[]>;
  close(): Promise<void>;
}

/** A Nest application context with MikroORM, the outbox, and the given handler providers (and extra entities). */
export async function startFixtureApp(
  databaseUrl: string,
  outbox: FixtureOutboxOptions,
  providers: Provider[] = [CountDeposits, CountPings],
  imports: ModuleMetadata['imports'] = [],
  entities: Function[] = [],
  /** MikroORM options over the fixture's own (e.g. `allowGlobalContext`). */
  ormOptions: { allowGlobalContext?: boolean } = {},
): Promise<FixtureApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [
      MikroOrmModule.forRoot({
        driver: PostgreSqlDriver,
        clientUrl: databaseUrl,
        entities: [Account, ...entities, ...outboxEntities()],
        metadataProvider: ReflectMetadataProvider,
        pool: { max: 10 },
        registerRequestContext: false,
        ...ormOptions,
      }),
      OutboxModule.forRoot({ service: 'fixture', ...outbox }),
      ...imports,
    ],
    providers,
  }).compile();
  moduleRef.useLogger(['error', 'warn']);
  const app = await moduleRef.init();
  const orm = app.get<MikroORM<any>>(MikroORM);
  return {
    app,
    databaseUrl,
    orm,
    monitor: app.get(OutboxMonitor),
    runner: app.get(OutboxRunner),
    sql: (query, params = []) => orm.em.getConnection().execute(query, params),
    close: () => app.close(),
  };
}

/**
 * Capture only: no relay, no worker. Rows stay in the outbox but for those this process sends on
 * commit (the default), which needs a consuming service registered under its prefix.
 */
export const CAPTURE_ONLY: FixtureOutboxOptions = { relay: { enabled: false }, worker: { enabled: false } };
/** Capture only, and every row left to a relay (`relay.dispatchOnCommit: false`): a commit wakes one instead. */
export const CAPTURE_FOR_RELAY: FixtureOutboxOptions = {
  relay: { enabled: false, dispatchOnCommit: false },
  worker: { enabled: false },
};

/** Outbox options of a fixture app: the service is `fixture` unless a test names another. */
export type FixtureOutboxOptions = Omit<OutboxModuleOptions, 'service'> & { service?: string };

/** An outbox row's dispatch and lease state, as a test checks it. */
export interface OutboxRowState {
  id: string;
  dispatched: boolean;
  locked: boolean;
  claimed_by: string | null;
  attempts: number;
  last_error: string | null;
  routed_to: string[] | null;
}

/** The app's outbox rows in commit order, with their dispatch and lease state. */
export async function outboxRows(app: FixtureApp): Promise<OutboxRowState[]> {
  return app.sql(
    `select id, dispatched_at is not null as dispatched, locked_until is not null as locked, claimed_by, attempts,
       last_error, routed_to from outbox_message order by seq`,
  );
}
