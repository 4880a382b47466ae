import type { OutboxTableNames } from '../options/outbox-options.interface.js';
import { resolveTableNames } from '../options/table-names.js';
import { SCHEMA_STEPS } from './schema.steps.js';

/** DDL for the outbox and inbox tables, every schema step in order; idempotent, for any schema tool. */
export function outboxSchemaSql(tables: OutboxTableNames = {}): string[] {
  const names = resolveTableNames(tables);
  return SCHEMA_STEPS.flatMap((step) => step.up(names)).map(oneLine);
}

/** DDL undoing every step, newest first: both tables are dropped (the schema, if any, is left). */
export function dropOutboxSchemaSql(tables: OutboxTableNames = {}): string[] {
  const names = resolveTableNames(tables);
  return [...SCHEMA_STEPS]
    .reverse()
    .flatMap((step) => step.down(names))
    .map(oneLine);
}

export function oneLine(statement: string): string {
  return statement.replace(/\n\s+/g, ' ');
}
