/**
 * One OS process of the ordering chaos suite (compiled to dist/test/processes/ordered-node.js,
 * spawned by test/deploy/ordering-chaos.test.ts through test/fault/support/cluster.ts).
 *
 * A small service `ledger`: a `Tally` aggregate whose `bump()` raises `Bumped(tally, n)` (n counts
 * per tally: 1, 2, 3 … in commit order), two ordered handlers and one unordered sibling on that
 * type. Each handler records one `effect` row per run in its own transaction. Configured by env:
 *
 *   DATABASE_URL, REDIS_URL, OUTBOX_PREFIX     where to work
 *   RELAY, WORKER                              1 / 0: run the relay / the worker here
 *   LEASE_MS, RELAY_INTERVAL_MS, BATCH_SIZE, CONCURRENCY, ATTEMPTS, BACKOFF_MS, LOCK_DURATION_MS,
 *   STALLED_INTERVAL_MS                        outbox options (library defaults when unset)
 *   SEED                                       decides which messages fail and how the producer interleaves
 *   FAIL_FRACTION                              share of (handler, message) pairs whose first attempt throws
 *   FAIL_KEY=tally, FAIL_FOR_MS=ms             the ordered handlers fail every message of that tally for ms
 *                                              from its first failure (a key held back, its successors parked)
 *   HANDLERS=A,B                               register only these handlers (all three by default)
 *   HANDLER_DELAY_MS                           each handler first waits a random 0..ms (in its transaction)
 *   PRODUCE_KEYS, PRODUCE_EVENTS               write this many events for each of this many tallies
 *   FLUSH_AGGREGATES, PRODUCE_PARALLEL, PRODUCE_PAUSE_MS
 *                                              tallies per flush, flushes at once, pause between rounds
 *   KILL_ON_PROMOTE=n                          SIGKILL itself as the n-th promotion of a parked message
 *                                              starts (the predecessor committed, the promotion is lost)
 *   signal SIGUSR2                             the next handler SIGKILLs its process mid-transaction
 *                                              (after its effect row and inbox mark, before commit)
 */
import 'reflect-metadata';
import { Entity, PrimaryKey, Property, ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { MikroOrmModule } from '@mikro-orm/nestjs';
import { EntityManager, MikroORM, PostgreSqlDriver } from '@mikro-orm/postgresql';
import { Injectable, Module } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AggregateRoot, EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { Job } from 'bullmq';
import { OutboxEvent, OutboxModule, OutboxOrdered, currentMessage, outboxEntities } from 'nest-outbox';
import { seededRandom } from '../support/seeded-random.js';

type Message = Record<string, unknown> & { kind: string };

const env = process.env;
const num = (name: string): number | undefined =>
  env[name] === undefined || env[name] === '' ? undefined : Number(env[name]);
const on = (name: string, fallback: boolean): boolean => (env[name] === undefined ? fallback : env[name] === '1');
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const SEED = num('SEED') ?? 1;
const FAIL_FRACTION = num('FAIL_FRACTION') ?? 0;

let dieInNextHandler = false;
// Installed first, so a SIGUSR2 that arrives during boot does not terminate the process.
process.on('SIGUSR2', () => {
  dieInNextHandler = true;
});
// The suite holds the IPC channel; if the suite dies, its processes must not outlive it.
process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));

function send(message: Message): Promise<void> {
  return new Promise((resolve) => {
    if (!process.send || !process.connected) return resolve();
    process.send(message, undefined, undefined, () => resolve());
  });
}

/** A number in [0, 1) from a text, the same in every process (FNV-1a). */
function unitHash(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) / 2 ** 32;
}

@OutboxEvent('chaos.bumped.v1')
export class Bumped {
  constructor(
    readonly tally: string,
    readonly n: number,
  ) {}
}

@Entity({ tableName: 'tally' })
export class Tally extends AggregateRoot {
  @PrimaryKey({ type: 'text' })
  id: string;

  @Property({ type: 'integer' })
  count = 0;

  constructor(id: string) {
    super();
    this.id = id;
  }

  bump(): void {
    this.count++;
    this.apply(new Bumped(this.id, this.count));
  }
}

/** Whether FAIL_FOR_MS has not passed since the first held failure (in the database: it outlives processes). */
async function stillHeld(orm: MikroORM): Promise<boolean> {
  const [row] = await orm.em
    .getConnection()
    .execute<Array<{ held: boolean }>>(
      `select coalesce(min(at), now()) + ? * interval '1 millisecond' > now() as held from injected_failure where held`,
      [num('FAIL_FOR_MS') ?? 0],
    );
  return row.held;
}

/**
 * What every handler does: records its effect in its transaction; throws when the seed picked this
 * first attempt (recorded outside the transaction, so the suite can count it); dies mid-transaction
 * when told to.
 */
async function handle(em: EntityManager, orm: MikroORM, handler: string, event: Bumped): Promise<void> {
  const message = currentMessage()!;
  const delayMs = num('HANDLER_DELAY_MS') ?? 0;
  if (delayMs > 0) await sleep(Math.random() * delayMs);
  const ordered = handler !== 'Mailer';
  const held = ordered && env.FAIL_KEY === event.tally && (await stillHeld(orm));
  const picked = message.attempt === 1 && unitHash(`${SEED}:${handler}:${event.tally}:${event.n}`) < FAIL_FRACTION;
  if (held || picked) {
    await orm.em
      .getConnection()
      .execute('insert into injected_failure (handler, tally, n, held) values (?, ?, ?, ?)', [
        handler,
        event.tally,
        event.n,
        held,
      ]);
    throw new Error(`injected failure: ${handler} ${event.tally}#${event.n} (attempt ${message.attempt})`);
  }
  await em.execute('insert into effect (handler, tally, n, message_id) values (?, ?, ?, ?)', [
    handler,
    event.tally,
    event.n,
    message.headers.messageId,
  ]);
  if (dieInNextHandler) {
    // Mid-handler: the effect row and the inbox mark are in the open transaction, nothing committed.
    await send({ kind: 'dying-in-handler', handler, tally: event.tally, n: event.n });
    process.kill(process.pid, 'SIGKILL');
  }
}

/** Records its effect under its class name (see `handle`). */
@Injectable()
abstract class Recorder implements IEventHandler<Bumped> {
  constructor(
    private readonly em: EntityManager,
    private readonly orm: MikroORM,
  ) {}

  handle(event: Bumped): Promise<void> {
    return handle(this.em, this.orm, this.constructor.name, event);
  }
}

@EventsHandler(Bumped)
@OutboxOrdered()
export class LedgerProjector extends Recorder {}

@EventsHandler(Bumped)
@OutboxOrdered()
export class AuditTrail extends Recorder {}

/** Unordered: runs as soon as a worker takes the message, whatever holds its key for the others. */
@EventsHandler(Bumped)
export class Mailer extends Recorder {}

/** The n-th promotion of a parked message kills this process before it reaches Redis. */
function instrumentPromotions(): void {
  const killAt = num('KILL_ON_PROMOTE');
  if (!killAt) return;
  let promotions = 0;
  const promote = Job.prototype.promote;
  Job.prototype.promote = async function (this: Job) {
    if (++promotions === killAt) {
      await send({ kind: 'killing-on-promote', jobId: this.id });
      process.kill(process.pid, 'SIGKILL');
      await new Promise(() => undefined);
    }
    return promote.call(this);
  };
}

/**
 * Writes PRODUCE_EVENTS events for each of PRODUCE_KEYS tallies: rounds over the tallies in a
 * seeded order, FLUSH_AGGREGATES tallies (loaded from the database) per flush, 1–3 events per
 * tally and flush, PRODUCE_PARALLEL flushes at once on disjoint tallies; so each tally's events
 * are committed one flush after the other, interleaved with other tallies'.
 */
async function produce(orm: MikroORM): Promise<void> {
  const keys = num('PRODUCE_KEYS') ?? 0;
  const events = num('PRODUCE_EVENTS') ?? 0;
  const perFlush = num('FLUSH_AGGREGATES') ?? 5;
  const parallel = num('PRODUCE_PARALLEL') ?? 3;
  const pauseMs = num('PRODUCE_PAUSE_MS') ?? 0;
  const next = seededRandom(SEED);
  const ids = Array.from({ length: keys }, (_, i) => `tally-${String(i).padStart(2, '0')}`);
  const setup = orm.em.fork();
  for (const id of ids) setup.persist(new Tally(id));
  await setup.flush();
  const written = new Map(ids.map((id) => [id, 0]));
  let total = 0;
  let flushes = 0;
  while (total < keys * events) {
    const open = ids.filter((id) => written.get(id)! < events).sort(() => next() - 0.5);
    const groups: string[][] = [];
    for (let i = 0; i < open.length; i += perFlush) groups.push(open.slice(i, i + perFlush));
    const plans = groups.map((group) =>
      group.map((id) => ({ id, bumps: Math.min(events - written.get(id)!, 1 + Math.floor(next() * 3)) })),
    );
    for (let i = 0; i < plans.length; i += parallel) {
      await Promise.all(
        plans.slice(i, i + parallel).map(async (plan) => {
          const em = orm.em.fork();
          const tallies = await em.find(Tally, { id: { $in: plan.map((p) => p.id) } });
          for (const tally of tallies)
            for (let b = 0; b < plan.find((p) => p.id === tally.id)!.bumps; b++) tally.bump();
          await em.flush();
          flushes++;
          for (const { id, bumps } of plan) written.set(id, written.get(id)! + bumps);
          total += plan.reduce((sum, p) => sum + p.bumps, 0);
        }),
      );
    }
    void send({ kind: 'produced', events: total });
    if (pauseMs > 0) await sleep(pauseMs);
  }
  await send({ kind: 'produce-done', events: total, flushes });
}

async function main(): Promise<void> {
  instrumentPromotions();
  const backoffMs = num('BACKOFF_MS');
  const handlers = [LedgerProjector, AuditTrail, Mailer].filter(
    (handler) => !env.HANDLERS || env.HANDLERS.split(',').includes(handler.name),
  );
  @Module({
    imports: [
      MikroOrmModule.forRoot({
        driver: PostgreSqlDriver,
        clientUrl: env.DATABASE_URL,
        entities: [Tally, ...outboxEntities()],
        metadataProvider: ReflectMetadataProvider,
        pool: { max: 20 },
        registerRequestContext: false,
      }),
      OutboxModule.forRoot({
        service: 'ledger',
        redis: env.REDIS_URL,
        prefix: env.OUTBOX_PREFIX,
        relay: {
          enabled: on('RELAY', true),
          leaseMs: num('LEASE_MS'),
          intervalMs: num('RELAY_INTERVAL_MS'),
          batchSize: num('BATCH_SIZE'),
        },
        worker: {
          enabled: on('WORKER', true),
          concurrency: num('CONCURRENCY'),
          attempts: num('ATTEMPTS'),
          backoff: backoffMs === undefined ? undefined : { type: 'fixed', delayMs: backoffMs },
          lockDurationMs: num('LOCK_DURATION_MS'),
          stalledIntervalMs: num('STALLED_INTERVAL_MS'),
        },
      }),
    ],
    providers: handlers,
  })
  class OrderedNodeModule {}

  const app = await NestFactory.createApplicationContext(OrderedNodeModule, { logger: ['error', 'warn', 'log'] });
  app.enableShutdownHooks();
  await send({ kind: 'ready' });
  if (num('PRODUCE_KEYS')) await produce(app.get(MikroORM));
}

main().catch((error: unknown) => {
  console.error('ordered-node failed:', error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exit(1);
});
