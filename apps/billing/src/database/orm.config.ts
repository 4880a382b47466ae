import { ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { Migrator } from '@mikro-orm/migrations';
import { defineConfig, type Options } from '@mikro-orm/postgresql';
import { outboxEntities, outboxMigrations } from 'nest-outbox';
import { Invoice } from '../invoices/invoice.entity.js';
import { CreateBillingTables } from './billing.migration.js';

/** Billing's own database: its invoices, its outbox and its inbox live together. */
export const DEFAULT_BILLING_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/nest_outbox_billing';

export function billingOrmConfig(
  clientUrl = process.env.BILLING_DATABASE_URL ?? DEFAULT_BILLING_DATABASE_URL,
): Options {
  return defineConfig({
    clientUrl,
    entities: [Invoice, ...outboxEntities()],
    metadataProvider: ReflectMetadataProvider,
    extensions: [Migrator],
    migrations: {
      migrationsList: [...outboxMigrations(), { name: 'Migration20261123000300_billing', class: CreateBillingTables }],
      snapshot: false,
      silent: true,
    },
    pool: { max: 20 },
    debug: false,
  });
}
