import type { MigrationObject } from '@mikro-orm/core';
import { Migration } from '@mikro-orm/migrations';
import type { OutboxTableNames } from '../options/outbox-options.interface.js';
import { resolveTableNames } from '../options/table-names.js';
import { oneLine } from './outbox.schema.js';
import { SCHEMA_STEPS, type SchemaStep } from './schema.steps.js';

/**
 * MikroORM migrations creating and evolving the outbox and inbox tables, one per schema step, for
 * `migrations.migrationsList` (spread them in). Pass the same `tables` as to `OutboxModule.forRoot()`.
 */
export function outboxMigrations(tables: OutboxTableNames = {}): MigrationObject[] {
  const names = resolveTableNames(tables);
  return SCHEMA_STEPS.map((step) => ({ name: step.name, class: migrationOf(step, names) }));
}

function migrationOf(step: SchemaStep, names: ReturnType<typeof resolveTableNames>): MigrationObject['class'] {
  return class extends Migration {
    override up(): void {
      for (const statement of step.up(names)) this.addSql(oneLine(statement));
    }

    override down(): void {
      for (const statement of step.down(names)) this.addSql(oneLine(statement));
    }
  };
}
