import 'reflect-metadata';
import type { INestApplicationContext } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { OutboxMonitor, type OutboxModuleOptions } from 'nest-outbox';
import { removePrefix } from '../../../test/support/redis.js';
import { BillingAppModule } from '../../billing/src/billing.module.js';
import { prepareBillingDatabase } from '../../billing/src/database/prepare-database.js';
import { OrdersAppModule } from '../../orders/src/app.module.js';
import { prepareDatabase } from '../../orders/src/database/prepare-database.js';
import { placeAndPayOrders } from './order.load.js';
import { printSummary } from './summary.js';
import { ServiceProcess } from './service.process.js';
import { emptyTables, readFigures } from './service.figures.js';

const ORDERS = Number(process.env.DEMO_ORDERS ?? 300);
const BILLING_PROCESSES = 2;
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const POSTGRES = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const ORDERS_DB = databaseUrl('nest_outbox_demo_orders');
const BILLING_DB = databaseUrl('nest_outbox_demo_billing');
const PREFIX = 'outbox-demo';

/**
 * Runs the example as it would be deployed — the orders service and two processes of the billing
 * service, each service with its own database, meeting in Redis — places and pays orders over
 * HTTP, waits until every subscribed handler of every service ran, and checks each effect
 * happened exactly once.
 */
async function demo(): Promise<number> {
  await Promise.all([prepareDatabase(ORDERS_DB), prepareBillingDatabase(BILLING_DB)]);
  await emptyTables(ORDERS_DB, [
    'orders',
    'order_summary',
    'notification_log',
    'loyalty_account',
    'order_invoice',
    ...OUTBOX_TABLES,
  ]);
  await emptyTables(BILLING_DB, ['invoice', ...OUTBOX_TABLES]);
  await removePrefix(PREFIX, REDIS_URL);
  const shared = { REDIS_URL, OUTBOX_PREFIX: PREFIX };
  const services = [
    await ServiceProcess.start('orders', 'orders', { ...shared, DATABASE_URL: ORDERS_DB }),
    ...(await Promise.all(
      Array.from({ length: BILLING_PROCESSES }, (_, i) =>
        ServiceProcess.start(`billing-${i + 1}`, 'billing', { ...shared, BILLING_DATABASE_URL: BILLING_DB }),
      ),
    )),
  ];
  const monitors = await openMonitors();
  try {
    const started = performance.now();
    const ids = await placeAndPayOrders(services[0].url, ORDERS);
    if (process.env.DEMO_TIMING)
      console.log(`placed and paid in ${((performance.now() - started) / 1000).toFixed(2)} s`);
    await untilEverySettled(
      monitors.map((monitor) => monitor.get(OutboxMonitor)),
      180_000,
    );
    const elapsed = (performance.now() - started) / 1000;
    const orders = await readFigures(ORDERS_DB, ORDERS_EFFECTS);
    const billing = await readFigures(BILLING_DB, BILLING_EFFECTS);
    const deadLetters = Object.values((await monitors[0].get(OutboxMonitor).snapshot()).services).reduce(
      (sum, queue) => sum + queue.failed,
      0,
    );
    return printSummary({
      orders: ids.length,
      billingProcesses: BILLING_PROCESSES,
      elapsed,
      deadLetters,
      figures: { orders, billing },
    });
  } finally {
    await Promise.all(monitors.map((monitor) => monitor.close()));
    await Promise.all(services.map((service) => service.stop()));
  }
}

const OUTBOX_TABLES = [
  'outbox_message',
  'outbox_message_route',
  'outbox_message_route_seq',
  'inbox_message',
  'inbox_message_position',
  'inbox_message_parked',
];

const ORDERS_EFFECTS = `select
  (select count(*) from order_summary where status = 'paid')::int as "summaries paid",
  (select count(*) from notification_log where kind = 'order-confirmation')::int as "order confirmations",
  (select count(*) from notification_log where kind = 'points-statement')::int as "points statements",
  (select count(*) from order_invoice where status = 'settled')::int as "invoices recorded settled"`;

const BILLING_EFFECTS = `select
  (select count(*) from invoice where status = 'settled')::int as "invoices settled",
  (select count(*) from invoice where status <> 'settled')::int as "invoices not settled"`;

/** The two services' monitors, in this process: their relays, senders and workers stay off, they only read. */
async function openMonitors(): Promise<INestApplicationContext[]> {
  const readOnly: Partial<OutboxModuleOptions> = {
    redis: REDIS_URL,
    prefix: PREFIX,
    relay: { enabled: false, dispatchOnCommit: false },
    worker: { enabled: false },
    retention: { enabled: false },
  };
  return Promise.all([
    NestFactory.createApplicationContext(OrdersAppModule.register({ databaseUrl: ORDERS_DB, outbox: readOnly }), {
      logger: ['error'],
    }),
    NestFactory.createApplicationContext(BillingAppModule.register({ databaseUrl: BILLING_DB, outbox: readOnly }), {
      logger: ['error'],
    }),
  ]);
}

/** Every service settled at once: a message one service's handler writes is seen by the next read. */
async function untilEverySettled(monitors: OutboxMonitor[], timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const settled = await Promise.all(monitors.map((monitor) => monitor.isSettled()));
    if (settled.every(Boolean) && (await monitors[0].isSettled())) return;
    if (Date.now() > deadline) throw new Error(`Not settled after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function databaseUrl(name: string): string {
  const url = new URL(POSTGRES);
  url.pathname = `/${name}`;
  return url.toString();
}

demo().then(
  (code) => process.exit(code),
  (error: unknown) => {
    console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
    process.exit(1);
  },
);
