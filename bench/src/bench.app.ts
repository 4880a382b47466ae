import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { Entity, PrimaryKey, Property, ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { MikroOrmModule } from '@mikro-orm/nestjs';
import { MikroORM, TransactionContext, defineConfig, type TransactionEventArgs } from '@mikro-orm/postgresql';
import {
  Injectable,
  Module,
  type DynamicModule,
  type INestApplicationContext,
  type OnApplicationBootstrap,
  type OnModuleInit,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AggregateRoot, EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { OutboxEvent, OutboxModule, outboxEntities, type OutboxModuleOptions } from 'nest-outbox';
import { liveHeapMB, now } from './harness.js';

/** Filler so a payload is ~250 bytes of JSON, a typical small domain event; the baseline uses the same text. */
const NOTE = 'n'.repeat(150);

@OutboxEvent('bench.something-happened.v1')
export class SomethingHappened {
  constructor(
    readonly aggregateId: string,
    readonly seq: number,
    /** now() just before the flush that commits this event (the commit time itself cannot be inside the row). */
    readonly sentAt: number,
    readonly note: string = NOTE,
  ) {}
}

/**
 * An aggregate shaped like the example's Order (five columns), so the flush the outbox adds to is
 * a realistic one rather than the cheapest possible insert. Raises `events` events when created.
 */
@Entity({ tableName: 'bench_aggregate' })
export class BenchAggregate extends AggregateRoot {
  @PrimaryKey({ type: 'uuid' })
  id!: string;

  @Property({ type: 'text' })
  customerId!: string;

  @Property({ type: 'integer' })
  totalCents!: number;

  @Property({ type: 'text' })
  status!: string;

  @Property({ type: 'datetime', columnType: 'timestamptz' })
  placedAt!: Date;

  static create(n: number, events: number, sentAt: number): BenchAggregate {
    const aggregate = new BenchAggregate();
    aggregate.id = randomUUID();
    aggregate.customerId = `customer-${n % 100}`;
    aggregate.totalCents = 1000 + n;
    aggregate.status = 'placed';
    aggregate.placedAt = new Date();
    for (let seq = 0; seq < events; seq++) aggregate.apply(new SomethingHappened(aggregate.id, seq, sentAt));
    return aggregate;
  }
}

/**
 * What handlers report to the bench process they run in: when each handler started (latency) and
 * when each handler transaction committed (done). The node process installs the listeners.
 */
export const handled: {
  started: (event: SomethingHappened, at: number) => void;
  committed: (at: number) => void;
} = {
  started: () => undefined,
  committed: () => undefined,
};

/** Handler runs not committed yet, by the transaction they ran in (several, when runs share one). */
const uncommitted = new WeakMap<object, number>();

/**
 * The trivial handler: no database write of its own, so a message costs exactly what is done
 * around a handler (its transaction and inbox insert). It notes when it started, and in which
 * transaction, so its commit can be counted.
 */
@EventsHandler(SomethingHappened)
export class RecordHandled implements IEventHandler<SomethingHappened> {
  handle(event: SomethingHappened): void {
    handled.started(event, now());
    const transaction = TransactionContext.getEntityManager()?.getTransactionContext<object>();
    if (transaction) uncommitted.set(transaction, (uncommitted.get(transaction) ?? 0) + 1);
  }
}

/**
 * Hears the commit of every transaction a handler ran in (writers' are not), so "handled" means
 * committed with its inbox mark, not just started; a transaction several runs shared counts each.
 * Registered at module init, before the worker starts taking jobs.
 */
@Injectable()
export class HandlerCommits implements OnModuleInit {
  constructor(private readonly orm: MikroORM) {}

  onModuleInit(): void {
    this.orm.em.getEventManager().registerSubscriber({
      afterTransactionCommit: ({ transaction }: TransactionEventArgs) => {
        const runs = transaction ? uncommitted.get(transaction) : undefined;
        if (!runs) return;
        uncommitted.delete(transaction!);
        const at = now();
        for (let run = 0; run < runs; run++) handled.committed(at);
      },
    });
  }
}

/**
 * Notes when the application finished booting (the relay starts draining at that moment) and the
 * live heap then, before any row arrived (the relay drain compares it with the live heap after it).
 */
@Injectable()
export class BootClock implements OnApplicationBootstrap {
  bootedAt = 0;
  liveHeapMB = 0;
  onApplicationBootstrap(): void {
    this.liveHeapMB = liveHeapMB();
    this.bootedAt = now();
  }
}

@Module({})
class BenchAppModule {}

export interface BenchAppOptions {
  databaseUrl: string;
  /** OutboxModule options (from outbox-options.ts); `false` boots plain MikroORM with the same entities (flush "off"). */
  outbox: OutboxModuleOptions | false;
  /** Connections: enough that writers, handlers and the relay never wait for one. */
  poolMax: number;
  /** `false`: the service has no handler of its own (a producer only other services consume from). Default true. */
  handlers?: boolean;
}

/** A Nest application context like a user's service: MikroOrmModule + OutboxModule + the handler. */
export async function startBenchApp(options: BenchAppOptions): Promise<INestApplicationContext> {
  const orm = MikroOrmModule.forRoot(
    defineConfig({
      clientUrl: options.databaseUrl,
      entities: [BenchAggregate, ...outboxEntities()],
      metadataProvider: ReflectMetadataProvider,
      pool: { max: options.poolMax },
      debug: false,
    }),
  );
  const module: DynamicModule = {
    module: BenchAppModule,
    imports: [orm, ...(options.outbox ? [OutboxModule.forRoot(options.outbox)] : [])],
    providers: [BootClock, ...(options.outbox && options.handlers !== false ? [RecordHandled, HandlerCommits] : [])],
  };
  return NestFactory.createApplicationContext(module, { logger: ['error', 'warn'] });
}

/** The app's ORM, typed as the phases use it. */
export function ormOf(app: INestApplicationContext): MikroORM {
  return app.get<MikroORM>(MikroORM);
}
