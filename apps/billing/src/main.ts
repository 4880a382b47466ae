import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { describeParts, outboxFromEnv } from '../../shared/src/outbox-env.js';
import { startTelemetry } from '../../shared/src/telemetry.js';
import { BillingAppModule } from './billing.module.js';
import { prepareBillingDatabase } from './database/prepare-database.js';

/** Billing has no API of its own: it consumes orders' events and publishes its own. */
async function main(): Promise<void> {
  const telemetry = startTelemetry('billing');
  await prepareBillingDatabase();
  const outbox = outboxFromEnv();
  const app = await NestFactory.create(BillingAppModule.register({ outbox, telemetry }));
  app.enableShutdownHooks();
  await app.listen(Number(process.env.PORT ?? 3001), '127.0.0.1');
  console.log(
    `billing service on ${await app.getUrl()} (consumes orders.*, publishes billing.*, GET /metrics; ${describeParts(outbox)})`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
