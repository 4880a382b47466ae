import { createHash } from 'node:crypto';
import type { ResolvedTableNames } from '../options/outbox-options.interface.js';

export type Tables = ResolvedTableNames;

/** Quoted, schema-qualified names. Identifiers were validated by the options, so quoting is enough. */
export function qualifiedTables(tables: Tables): { outbox: string; inbox: string } {
  const prefix = tables.schema ? `"${tables.schema}".` : '';
  return { outbox: `${prefix}"${tables.outbox}"`, inbox: `${prefix}"${tables.inbox}"` };
}

const MAX_IDENTIFIER = 63;

/**
 * `<table>_<suffix>`, kept within PostgreSQL's 63-byte identifiers: it would truncate a longer name
 * silently, and two indexes of one long table name would then collide.
 */
export function indexName(table: string, suffix: string): string {
  const plain = `${table}_${suffix}`;
  if (plain.length <= MAX_IDENTIFIER) return plain;
  const hash = createHash('sha1').update(table).digest('hex').slice(0, 8);
  return `${table.slice(0, MAX_IDENTIFIER - suffix.length - hash.length - 2)}_${hash}_${suffix}`;
}
