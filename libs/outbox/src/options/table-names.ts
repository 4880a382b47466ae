import { OutboxOptionsError } from '../outbox.errors.js';
import { sameTableNames } from '../outbox.messages.js';
import type { OutboxTableNames, ResolvedTableNames } from './outbox-options.interface.js';
import { section, text } from './option-readers.js';

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;
const IDENTIFIER_RULE = 'a SQL identifier: a letter or "_", then letters, digits or "_", at most 63';

/**
 * Table names with defaults, validated as plain identifiers so they can be quoted into SQL.
 * Reads nothing else: the schema helpers call it without the rest of the module's options.
 */
export function resolveTableNames(tables: OutboxTableNames | undefined): ResolvedTableNames {
  const given = section('tables', tables);
  const resolved: ResolvedTableNames = {
    schema:
      given.schema === undefined ? undefined : text('tables.schema', given.schema, '', IDENTIFIER, IDENTIFIER_RULE),
    outbox: text('tables.outbox', given.outbox, 'outbox_message', IDENTIFIER, IDENTIFIER_RULE),
    inbox: text('tables.inbox', given.inbox, 'inbox_message', IDENTIFIER, IDENTIFIER_RULE),
  };
  if (resolved.outbox === resolved.inbox) {
    throw new OutboxOptionsError(sameTableNames(resolved.outbox));
  }
  return resolved;
}
