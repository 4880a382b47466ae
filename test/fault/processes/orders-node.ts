/**
 * One OS process of the orders example for the fault suite (compiled to
 * dist/test/fault/processes/orders-node.js, spawned by test/fault/support/cluster.ts).
 *
 * Boots `OrdersAppModule.register(...)` like apps/orders/src/main.ts does (NestFactory,
 * enableShutdownHooks), configured by environment variables, and adds fault-injection points
 * that the library itself never sees: they wrap the `OUTBOX_QUEUE` instance's `addBulk` and `add`, and the
 * example's handler instances before the application starts.
 *
 *   DATABASE_URL, REDIS_URL, OUTBOX_PREFIX     where to work
 *   RELAY, WORKER                              1 / 0: run the relay / the BullMQ worker here
 *   DISPATCH_ON_COMMIT=1 / 0                   relay.dispatchOnCommit on / off (unset: the library's default, on)
 *   LEASE_MS, RELAY_INTERVAL_MS, BATCH_SIZE, MAX_BACKOFF_MS, CONCURRENCY, ATTEMPTS, BACKOFF_MS,
 *   LOCK_DURATION_MS, STALLED_INTERVAL_MS, SHUTDOWN_TIMEOUT_MS
 *                                              outbox options (library defaults when unset)
 *   PRODUCE_ORDERS, PRODUCE_BATCH, PRODUCE_PAUSE_MS, CUSTOMERS
 *                                              place and pay this many orders (batches of aggregates
 *                                              per flush), retrying through outages
 *   EXIT_AFTER_PRODUCE=1                       close the app and exit 0 once produced
 *   KILL_AFTER_ADDBULK=n                       SIGKILL itself right after the n-th addBulk resolved
 *   STOP_BEFORE_ADDBULK=n                      SIGSTOP itself after the n-th claim, before its addBulk
 *   ADDBULK_DELAY_MS=ms, ADDBULK_DELAY_FROM=n  addBulk calls from the n-th on (default 1st) start this much
 *                                              later: an enqueue in flight
 *   HANDLER_DELAY_MS=ms                        each handler first waits a random 0..ms (inside its transaction)
 *   HANG_HANDLER=n                             the n-th handler call never returns
 *   STATUS_MS=ms                               report status over IPC this often
 *   signal SIGUSR2                             the next handler SIGKILLs its process mid-transaction
 *                                              (after its writes and inbox mark, before commit)
 */
import 'reflect-metadata';
import { MikroORM } from '@mikro-orm/postgresql';
import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import type { Queue } from 'bullmq';
import { OUTBOX_QUEUE, OutboxMonitor, type OutboxModuleOptions } from 'nest-outbox';
import { OrdersAppModule } from '../../../apps/orders/src/app.module.js';
import { AwardLoyaltyPoints } from '../../../apps/orders/src/loyalty/award-points.handler.js';
import {
  SendOrderConfirmation,
  SendPointsStatement,
} from '../../../apps/orders/src/notifications/notification.handlers.js';
import { Order, OrderStatus } from '../../../apps/orders/src/orders/order.entity.js';
import { OrderSummaryProjector } from '../../../apps/orders/src/read-model/order-summary.projector.js';
import { dieWithSuite, send } from '../../processes/ipc.js';

const env = process.env;
const num = (name: string): number | undefined =>
  env[name] === undefined || env[name] === '' ? undefined : Number(env[name]);
const on = (name: string, fallback: boolean): boolean => (env[name] === undefined ? fallback : env[name] === '1');

let dieInNextHandler = false;
let inHandler = 0;
let handlerCalls = 0;
let addBulkCalls = 0;
const addBulkInFlight = new Map<number, string[]>();

// Installed first, so a SIGUSR2 that arrives during boot does not terminate the process.
process.on('SIGUSR2', () => {
  dieInNextHandler = true;
});
process.once('SIGTERM', () => {
  // Nest's shutdown hook listens too; this only reports what was in flight when the signal came.
  // `once`, so Nest's re-raised SIGTERM after app.close() still ends the process as in production.
  send({ kind: 'sigterm', inHandler, addBulkInFlight: [...addBulkInFlight.values()].flat() });
});

dieWithSuite();

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function outboxOptions(): OutboxModuleOptions {
  const relay = {
    enabled: on('RELAY', true),
    ...(env.DISPATCH_ON_COMMIT === undefined ? {} : { dispatchOnCommit: on('DISPATCH_ON_COMMIT', true) }),
    leaseMs: num('LEASE_MS'),
    intervalMs: num('RELAY_INTERVAL_MS'),
    batchSize: num('BATCH_SIZE'),
    maxBackoffMs: num('MAX_BACKOFF_MS'),
  };
  const delayMs = num('BACKOFF_MS');
  const worker = {
    enabled: on('WORKER', true),
    concurrency: num('CONCURRENCY'),
    attempts: num('ATTEMPTS'),
    backoff: delayMs === undefined ? undefined : { delayMs },
    lockDurationMs: num('LOCK_DURATION_MS'),
    stalledIntervalMs: num('STALLED_INTERVAL_MS'),
  };
  return {
    service: 'orders',
    redis: env.REDIS_URL,
    prefix: env.OUTBOX_PREFIX,
    relay,
    worker,
    shutdownTimeoutMs: num('SHUTDOWN_TIMEOUT_MS'),
  };
}

/**
 * Fault points around the real queue's enqueue calls (the relay calls the same instance): addBulk,
 * and add, which the relay calls once per job for up to 10 jobs of a queue. Each call counts as the
 * n-th, so the scenarios that count calls relay full batches of 50 or more.
 */
function instrumentQueue(queue: Queue): void {
  const killAfter = num('KILL_AFTER_ADDBULK');
  const stopBefore = num('STOP_BEFORE_ADDBULK');
  const delayMs = num('ADDBULK_DELAY_MS') ?? 0;
  const delayFrom = num('ADDBULK_DELAY_FROM') ?? 1;
  const enqueue = async <T>(ids: string[], real: () => Promise<T>): Promise<T> => {
    const call = ++addBulkCalls;
    if (call === stopBefore) {
      await send({ kind: 'stopping', call, ids });
      process.kill(process.pid, 'SIGSTOP');
    }
    addBulkInFlight.set(call, ids);
    try {
      if (delayMs > 0 && call >= delayFrom) await sleep(delayMs);
      const added = await real();
      if (call === killAfter) {
        await send({ kind: 'killing', call, ids });
        process.kill(process.pid, 'SIGKILL');
      }
      void send({ kind: 'addbulk', call, ids: call === stopBefore ? ids : undefined, count: ids.length });
      return added;
    } finally {
      addBulkInFlight.delete(call);
    }
  };
  const addBulk = queue.addBulk.bind(queue);
  const add = queue.add.bind(queue);
  queue.addBulk = ((jobs: Parameters<Queue['addBulk']>[0]) =>
    enqueue(
      jobs.map((job) => String(job.opts?.jobId)),
      () => addBulk(jobs),
    )) as Queue['addBulk'];
  queue.add = ((...args: Parameters<Queue['add']>) =>
    enqueue([String(args[2]?.jobId)], () => add(...args))) as Queue['add'];
}

/** Wraps the example's handler instances (the ones the outbox worker discovered) with delay, hang and kill points. */
function instrumentHandlers(app: INestApplication): void {
  const delayMs = num('HANDLER_DELAY_MS') ?? 0;
  const hangAt = num('HANG_HANDLER');
  for (const type of [OrderSummaryProjector, SendOrderConfirmation, SendPointsStatement, AwardLoyaltyPoints]) {
    const instance = app.get<{ handle(event: object): unknown }>(type);
    const handle = instance.handle.bind(instance);
    instance.handle = async (event: object) => {
      const call = ++handlerCalls;
      inHandler++;
      try {
        if (delayMs > 0) await sleep(Math.random() * delayMs);
        const result = await handle(event);
        if (dieInNextHandler) {
          // Mid-handler: its writes and inbox mark are in the open transaction, nothing is committed.
          process.kill(process.pid, 'SIGKILL');
        }
        if (call === hangAt) {
          void send({ kind: 'hanging', handler: type.name });
          await new Promise(() => undefined);
        }
        return result;
      } finally {
        inHandler--;
      }
    };
  }
}

let sequence = 0;

/** Places and pays orders in batches of aggregates (one flush each), retrying every batch through outages. */
async function produce(app: INestApplication): Promise<void> {
  const total = num('PRODUCE_ORDERS') ?? 0;
  const batch = num('PRODUCE_BATCH') ?? 50;
  const pauseMs = num('PRODUCE_PAUSE_MS') ?? 0;
  const customers = num('CUSTOMERS') ?? 40;
  const orm = app.get(MikroORM);
  let produced = 0;
  let failures = 0;
  while (produced < total) {
    const size = Math.min(batch, total - produced);
    const ids = await retry(async () => {
      const em = orm.em.fork();
      const orders = Array.from({ length: size }, () => {
        const n = sequence++;
        return new Order(`customer-${n % customers}`, 1000 + ((n * 7919) % 9000));
      });
      em.persist(orders);
      await em.flush();
      return orders.map((order) => order.id);
    });
    await retry(async () => {
      // Loaded from the database (hydrated aggregates), paid, flushed: OrderPaid rows.
      const em = orm.em.fork();
      const orders = await em.find(Order, { id: { $in: ids }, status: OrderStatus.Placed });
      for (const order of orders) order.pay();
      await em.flush();
    });
    produced += size;
    void send({ kind: 'produced', orders: produced, failures });
    if (pauseMs > 0) await sleep(pauseMs);
  }
  await send({ kind: 'produce-done', orders: produced, failures });

  async function retry<T>(step: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        return await step();
      } catch (error) {
        if (failures++ % 20 === 0)
          console.error(`producer: batch failed, retrying: ${error instanceof Error ? error.message : String(error)}`);
        await sleep(250);
      }
    }
  }
}

async function main(): Promise<void> {
  const app = await NestFactory.create(
    OrdersAppModule.register({ databaseUrl: env.DATABASE_URL, outbox: outboxOptions() }),
    {
      logger: ['error', 'warn', 'log'],
    },
  );
  app.enableShutdownHooks();
  instrumentQueue(app.get<Queue>(OUTBOX_QUEUE));
  instrumentHandlers(app);
  await app.listen(0, '127.0.0.1');
  const statusMs = num('STATUS_MS');
  if (statusMs) {
    const monitor = app.get(OutboxMonitor);
    setInterval(
      () =>
        void send({ kind: 'status', inHandler, addBulkInFlight: addBulkInFlight.size, ...monitor.processCounters() }),
      statusMs,
    ).unref();
  }
  await send({ kind: 'ready', url: await app.getUrl() });
  if (num('PRODUCE_ORDERS')) await produce(app);
  if (on('EXIT_AFTER_PRODUCE', false)) {
    await app.close();
    process.exit(0);
  }
}

main().catch((error: unknown) => {
  console.error('orders-node failed:', error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exit(1);
});
