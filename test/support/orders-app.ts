import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import { MikroORM } from '@mikro-orm/postgresql';
import { OutboxMonitor, type OutboxModuleOptions } from 'nest-outbox';
import { OutboxRunner } from '../../libs/outbox/src/outbox.runner.js';
import { OrdersAppModule, type OrdersAppOptions } from '../../apps/orders/src/app.module.js';
import { prepareDatabase } from '../../apps/orders/src/database/prepare-database.js';

export interface OrdersApp {
  app: INestApplication;
  url: string;
  orm: MikroORM;
  monitor: OutboxMonitor;
  /** The outbox's internal runner (test hooks such as relayIdle). */
  runner: OutboxRunner;
  close(): Promise<void>;
}

/** Migrates the database (outbox + example tables); safe to call again. */
export async function migrateOrders(databaseUrl: string): Promise<void> {
  await prepareDatabase(databaseUrl);
}

/** The example service, listening on a free port, with the given outbox options (and a dashboard login or the OTel SDK it serves). */
export async function startOrdersApp(
  databaseUrl: string,
  outbox: Partial<OutboxModuleOptions>,
  more: Pick<OrdersAppOptions, 'dashboard' | 'telemetry'> = {},
): Promise<OrdersApp> {
  const moduleRef = await Test.createTestingModule({
    imports: [OrdersAppModule.register({ databaseUrl, outbox, ...more })],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: ['error', 'warn'] });
  await app.listen(0, '127.0.0.1');
  return {
    app,
    url: await app.getUrl(),
    orm: app.get(MikroORM),
    monitor: app.get(OutboxMonitor),
    runner: app.get(OutboxRunner),
    close: () => app.close(),
  };
}

export async function post<T = unknown>(url: string, body?: unknown): Promise<T> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body ?? {}),
  });
  if (!response.ok) throw new Error(`POST ${url} answered ${response.status}: ${await response.text()}`);
  return (await response.json()) as T;
}
