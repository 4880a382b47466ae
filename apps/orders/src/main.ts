import 'reflect-metadata';
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
  const app = await NestFactory.create(OrdersAppModule.register({ outbox, telemetry }));
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1');
  console.log(
    `orders service on ${await app.getUrl()} (POST /orders, POST /orders/:id/pay, GET /metrics; ${describeParts(outbox)})`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
