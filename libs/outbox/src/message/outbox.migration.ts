import { Migration } from '@mikro-orm/migrations';
import type { MigrationObject } from '@mikro-orm/core';
import type { OutboxTableNames } from '../outbox.options.js';
import { dropOutboxSchemaSql, outboxSchemaSql } from './outbox.schema.js';

/**
 * A MikroORM migration creating the outbox and inbox tables, for `migrations.migrationsList`.
 * Pass the same `tables` as to `OutboxModule.forRoot()` when you rename them.
 */
export function outboxMigration(tables: OutboxTableNames = {}): MigrationObject {
  const create = outboxSchemaSql(tables);
  const drop = dropOutboxSchemaSql(tables);
  class CreateOutboxTables extends Migration {
    override up(): void {
      for (const statement of create) this.addSql(statement);
    }

    override down(): void {
      for (const statement of drop) this.addSql(statement);
    }
  }
  return { name: 'Migration20261122000000_nest_outbox', class: CreateOutboxTables };
}
