import 'reflect-metadata';
import { randomUUID } from 'node:crypto';
import { Entity, PrimaryKey, Property, ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { MikroOrmModule } from '@mikro-orm/nestjs';
import { MikroORM, defineConfig } from '@mikro-orm/postgresql';
import {
  Injectable,
  Module,
  type DynamicModule,
  type INestApplicationContext,
  type OnApplicationBootstrap,
} from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AggregateRoot, EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { OutboxEvent, OutboxModule, outboxEntities, type OutboxModuleOptions } from 'nest-outbox';
import { POOL_MAX, liveHeapMB } from './harness.js';

/** Filler so a payload is ~250 bytes of JSON, a typical small domain event; the baseline uses the same text. */
const NOTE = 'n'.repeat(150);

@OutboxEvent('bench.something-happened.v1')
export class SomethingHappened {
  constructor(
    readonly aggregateId: string,
    readonly seq: number,
    /** Epoch ms just before the flush that commits this event (the commit time itself cannot be inside the row). */
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

/** What the handler reports to the running phase; each phase installs its own listener. */
export const handled: { listener: (event: SomethingHappened, startedAt: number) => void } = {
  listener: () => undefined,
};

/**
 * The trivial handler: no database write of its own, so a message costs exactly what the library
 * adds around a handler (its transaction and inbox insert). It only notes when it started.
 */
@EventsHandler(SomethingHappened)
export class RecordHandled implements IEventHandler<SomethingHappened> {
  handle(event: SomethingHappened): void {
    handled.listener(event, performance.timeOrigin + performance.now());
  }
}

/**
 * Notes when the application finished booting (the relay starts draining at that moment) and the
 * live heap then, before any row arrived (phase e compares it with the live heap after the drain).
 */
@Injectable()
export class BootClock implements OnApplicationBootstrap {
  bootedAt = 0;
  liveHeapMB = 0;
  onApplicationBootstrap(): void {
    this.liveHeapMB = liveHeapMB();
    this.bootedAt = performance.timeOrigin + performance.now();
  }
}

@Module({})
class BenchAppModule {}

export interface BenchAppOptions {
  databaseUrl: string;
  /** OutboxModule options; `false` boots plain MikroORM with the same entities (flush "off"). */
  /** Outbox options (service `bench` unless given), or false for no outbox. */
  outbox: Partial<OutboxModuleOptions> | false;
}

/** A Nest application context like a user's service: MikroOrmModule + OutboxModule + the handler. */
export async function startBenchApp(options: BenchAppOptions): Promise<INestApplicationContext> {
  const orm = MikroOrmModule.forRoot(
    defineConfig({
      clientUrl: options.databaseUrl,
      entities: [BenchAggregate, ...outboxEntities()],
      metadataProvider: ReflectMetadataProvider,
      pool: { max: POOL_MAX },
      debug: false,
    }),
  );
  const module: DynamicModule = {
    module: BenchAppModule,
    imports: [orm, ...(options.outbox ? [OutboxModule.forRoot({ service: 'bench', ...options.outbox })] : [])],
    providers: [BootClock, ...(options.outbox ? [RecordHandled] : [])],
  };
  return NestFactory.createApplicationContext(module, { logger: ['error', 'warn'] });
}

/** The app's ORM, typed as the phases use it. */
export function ormOf(app: INestApplicationContext): MikroORM {
  return app.get<MikroORM>(MikroORM);
}
