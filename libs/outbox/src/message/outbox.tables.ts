import type { ResolvedOutboxOptions } from '../outbox.options.js';

export type Tables = ResolvedOutboxOptions['tables'];

/** Quoted, schema-qualified names. Identifiers were validated by the options, so quoting is enough. */
export function qualifiedTables(tables: Tables): { outbox: string; inbox: string } {
  const prefix = tables.schema ? `"${tables.schema}".` : '';
  return { outbox: `${prefix}"${tables.outbox}"`, inbox: `${prefix}"${tables.inbox}"` };
}
