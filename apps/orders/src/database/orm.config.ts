import { ReflectMetadataProvider } from '@mikro-orm/decorators/legacy';
import { Migrator } from '@mikro-orm/migrations';
import { defineConfig, type Options } from '@mikro-orm/postgresql';
import { outboxEntities, outboxMigrations } from 'nest-outbox';
import { LoyaltyAccount } from '../loyalty/loyalty-account.entity.js';
import { Notification } from '../notifications/notification.entity.js';
import { Order } from '../orders/order.entity.js';
import { OrderSummary } from '../read-model/order-summary.entity.js';
import { CreateOrderInvoiceTable } from '../invoicing/order-invoice.migration.js';
import { CreateOrdersTables } from './orders.migration.js';

export const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/nest_outbox_orders';

/** MikroORM config of the example: its entities plus the outbox's, and both migrations. */
export function ordersOrmConfig(clientUrl = process.env.DATABASE_URL ?? DEFAULT_DATABASE_URL): Options {
  return defineConfig({
    clientUrl,
    entities: [Order, OrderSummary, Notification, LoyaltyAccount, ...outboxEntities()],
    metadataProvider: ReflectMetadataProvider,
    extensions: [Migrator],
    migrations: {
      migrationsList: [
        ...outboxMigrations(),
        { name: 'Migration20261122000100_orders', class: CreateOrdersTables },
        { name: 'Migration20261123000200_order_invoice', class: CreateOrderInvoiceTable },
      ],
      snapshot: false,
      silent: true,
    },
    pool: { max: 20 },
    debug: false,
  });
}
