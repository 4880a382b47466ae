import { MikroORM } from '@mikro-orm/postgresql';
import { ordersOrmConfig } from './orm.config.js';

/** Creates the database if it is missing and runs every pending migration (outbox tables included). */
export async function prepareDatabase(databaseUrl?: string): Promise<void> {
  const orm = await MikroORM.init(ordersOrmConfig(databaseUrl));
  try {
    await orm.schema.ensureDatabase();
    await orm.migrator.up();
  } finally {
    await orm.close();
  }
}
