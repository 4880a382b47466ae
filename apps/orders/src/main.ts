import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { OrdersAppModule } from './app.module.js';
import { prepareDatabase } from './database/prepare-database.js';

/** `OUTBOX_RELAY=off` / `OUTBOX_WORKER=off` split a deployment: API-only, relay-only or worker-only processes. */
function enabled(name: string): boolean {
  const value = (process.env[name] ?? 'on').toLowerCase();
  if (value !== 'on' && value !== 'off') throw new Error(`${name} must be "on" or "off", got "${process.env[name]}".`);
  return value === 'on';
}

async function main(): Promise<void> {
  await prepareDatabase();
  const outbox = { relay: { enabled: enabled('OUTBOX_RELAY') }, worker: { enabled: enabled('OUTBOX_WORKER') } };
  const app = await NestFactory.create(OrdersAppModule.register({ outbox }));
  app.enableShutdownHooks();
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port, '127.0.0.1');
  console.log(
    `orders service on http://127.0.0.1:${port}  (POST /orders, POST /orders/:id/pay; relay ${outbox.relay.enabled ? 'on' : 'off'}, worker ${outbox.worker.enabled ? 'on' : 'off'})`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
