import { MikroORM } from '@mikro-orm/postgresql';
import { billingOrmConfig } from './orm.config.js';

/** Creates billing's database if it is missing and runs every pending migration (outbox tables included). */
export async function prepareBillingDatabase(databaseUrl?: string): Promise<void> {
  const orm = await MikroORM.init(billingOrmConfig(databaseUrl));
  try {
    await orm.schema.ensureDatabase();
    await orm.migrator.up();
  } finally {
    await orm.close();
  }
}
