import 'reflect-metadata';
import { MikroORM } from '@mikro-orm/postgresql';
import { Logger, type INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { Queue } from 'bullmq';
import { OutboxMonitor } from 'nest-outbox';
import { OrdersAppModule } from './app.module.js';
import { prepareDatabase } from './database/prepare-database.js';

const ORDERS = Number(process.env.DEMO_ORDERS ?? 300);
const CONCURRENCY = 20;
const QUEUE = 'orders-demo';
const DATABASE_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/nest_outbox_demo';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

/** Drives the example end to end: place and pay orders over HTTP, wait for every handler, check the effects. */
async function demo(): Promise<number> {
  await prepareDatabase(DATABASE_URL);
  await reset();
  const app = await NestFactory.create(
    OrdersAppModule.register({ databaseUrl: DATABASE_URL, outbox: { redis: REDIS_URL, prefix: QUEUE } }),
    {
      logger: ['error', 'warn'],
    },
  );
  app.enableShutdownHooks();
  await app.listen(0, '127.0.0.1');
  const base = await app.getUrl();
  const started = performance.now();
  try {
    const ids = await inParallel(ORDERS, async (i) => {
      const placed = await call<{ id: string }>(`${base}/orders`, {
        customerId: `customer-${i % 25}`,
        totalCents: 1000 + i,
      });
      await call(`${base}/orders/${placed.id}/pay`);
      return placed.id;
    });
    const monitor = app.get(OutboxMonitor);
    await waitUntil(() => monitor.isSettled(), 120_000);
    const elapsed = (performance.now() - started) / 1000;
    const snapshot = await monitor.snapshot();
    const effects = await countEffects(app);
    const expected = { summariesPaid: ids.length, confirmations: ids.length, pointsStatements: ids.length };
    const ok =
      snapshot.queue.failed === 0 &&
      effects.summariesPaid === expected.summariesPaid &&
      effects.confirmations === expected.confirmations &&
      effects.pointsStatements === expected.pointsStatements &&
      snapshot.written === ids.length * 3;
    console.log(
      [
        `nest-outbox demo: ${ids.length} orders placed and paid over HTTP`,
        `  events written     ${snapshot.written}  (OrderPlaced, OrderPaid, chained LoyaltyPointsAwarded)`,
        `  dispatched         ${snapshot.dispatched}`,
        `  handled            ${snapshot.handled}  handler runs (5 per order)`,
        `  dead-lettered      ${snapshot.queue.failed}`,
        `  read model paid    ${effects.summariesPaid}/${expected.summariesPaid}`,
        `  notifications      ${effects.confirmations} confirmations, ${effects.pointsStatements} points statements`,
        `  elapsed            ${elapsed.toFixed(2)} s  (${((ids.length * 3) / elapsed).toFixed(0)} events/s)`,
        ok ? 'every event handled exactly once' : 'MISMATCH: see the figures above',
      ].join('\n'),
    );
    return ok ? 0 : 1;
  } finally {
    await app.close();
  }
}

async function reset(): Promise<void> {
  const orm = await MikroORM.init({ clientUrl: DATABASE_URL, entities: [], discovery: { warnWhenNoEntities: false } });
  await orm.em
    .getConnection()
    .execute('truncate orders, order_summary, notification_log, loyalty_account, outbox_message, inbox_message');
  await orm.close();
  const queue = new Queue(QUEUE, { connection: { url: REDIS_URL } });
  await queue.obliterate({ force: true });
  await queue.close();
}

async function countEffects(app: INestApplication) {
  const [row] = await app.get(MikroORM).em.getConnection().execute<Array<Record<string, number>>>(`select
    (select count(*) from order_summary where status = 'paid')::int as "summariesPaid",
    (select count(*) from notification_log where kind = 'order-confirmation')::int as confirmations,
    (select count(*) from notification_log where kind = 'points-statement')::int as "pointsStatements"`);
  return row as { summariesPaid: number; confirmations: number; pointsStatements: number };
}

async function call<T = unknown>(url: string, body?: unknown): Promise<T> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
  if (!response.ok) throw new Error(`POST ${url} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as T;
}

async function inParallel<T>(count: number, task: (i: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < count) {
        const i = next++;
        results[i] = await task(i);
      }
    }),
  );
  return results;
}

async function waitUntil(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`Not settled after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

demo().then(
  (code) => process.exit(code),
  (error: unknown) => {
    new Logger('demo').error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exit(1);
  },
);
