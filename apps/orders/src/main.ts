import 'reflect-metadata';
import { NestFactory } from '@nestjs/core';
import { OrdersAppModule } from './app.module.js';
import { prepareDatabase } from './database/prepare-database.js';

async function main(): Promise<void> {
  await prepareDatabase();
  const app = await NestFactory.create(OrdersAppModule.register());
  app.enableShutdownHooks();
  const port = Number(process.env.PORT ?? 3000);
  await app.listen(port, '127.0.0.1');
  console.log(`orders service on http://127.0.0.1:${port}  (POST /orders, POST /orders/:id/pay)`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
