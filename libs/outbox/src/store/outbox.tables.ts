import { createHash } from 'node:crypto';
import type { ResolvedTableNames } from '../options/outbox-options.interface.js';

export type Tables = ResolvedTableNames;

/** Every table of the outbox, quoted and schema-qualified; identifiers were validated, so quoting is enough. */
export interface QualifiedTables {
  /** Messages written by this service (producer side). */
  outbox: string;
  /** Handlers that finished a message (consumer side). */
  inbox: string;
  /** Each message's place in its key's order, per ordered handler it was routed to (producer side). */
  outboxRoute: string;
  /** The last place handed out per ordered handler and key (producer side). */
  outboxRouteSeq: string;
  /** The last place handled per ordered handler, source and key (consumer side). */
  inboxPosition: string;
  /** Messages that arrived before their turn, per ordered handler (consumer side). */
  inboxParked: string;
}

export function qualifiedTables(tables: Tables): QualifiedTables {
  const prefix = tables.schema ? `"${tables.schema}".` : '';
  const name = (table: string) => `${prefix}"${table}"`;
  return {
    outbox: name(tables.outbox),
    inbox: name(tables.inbox),
    outboxRoute: name(derivedName(tables.outbox, 'route')),
    outboxRouteSeq: name(derivedName(tables.outbox, 'route_seq')),
    inboxPosition: name(derivedName(tables.inbox, 'position')),
    inboxParked: name(derivedName(tables.inbox, 'parked')),
  };
}

const MAX_IDENTIFIER = 63;

/**
 * `<table>_<suffix>` (an index or a companion table), kept within PostgreSQL's 63-byte identifiers:
 * it would truncate a longer name silently, and two names made from one long table would collide.
 */
export function derivedName(table: string, suffix: string): string {
  const plain = `${table}_${suffix}`;
  if (plain.length <= MAX_IDENTIFIER) return plain;
  const hash = createHash('sha1').update(table).digest('hex').slice(0, 8);
  return `${table.slice(0, MAX_IDENTIFIER - suffix.length - hash.length - 2)}_${hash}_${suffix}`;
}

export const indexName = derivedName;
