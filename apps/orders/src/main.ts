import 'reflect-metadata';
import { randomBytes } from 'node:crypto';
import { NestFactory } from '@nestjs/core';
import { describeParts, outboxFromEnv } from '../../shared/src/outbox-env.js';
import { startTelemetry } from '../../shared/src/telemetry.js';
import { OrdersAppModule } from './app.module.js';
import { prepareDatabase } from './database/prepare-database.js';

async function main(): Promise<void> {
  // Before the app is created: the outbox's instruments and the HTTP instrumentation need the SDK.
  const telemetry = startTelemetry('orders');
  await prepareDatabase();
  const outbox = outboxFromEnv();
  // The dashboard shows payloads: without DASHBOARD_PASSWORD it gets a random one, printed once below.
  const dashboard = {
    user: process.env.DASHBOARD_USER ?? 'admin',
    password: process.env.DASHBOARD_PASSWORD ?? randomBytes(12).toString('base64url'),
  };
  const app = await NestFactory.create(OrdersAppModule.register({ outbox, telemetry, dashboard }));
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
  const url = await app.getUrl();
  console.log(
    `orders service on ${url} (POST /orders, POST /orders/:id/pay, GET /health, GET /metrics; ${describeParts(outbox)})`,
  );
  console.log(
    `outbox dashboard: ${url}/outbox (user ${dashboard.user}` +
      `${process.env.DASHBOARD_PASSWORD ? '' : `, password ${dashboard.password}`})`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
