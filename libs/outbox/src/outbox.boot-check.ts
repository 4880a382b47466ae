import type { MikroORM } from '@mikro-orm/core';
import type { ResolvedOutboxOptions } from './options/outbox-options.interface.js';
import { OutboxSetupError } from './outbox.errors.js';
import {
  databaseUnreachableAtBoot,
  entitiesDisagree,
  entitiesNotRegistered,
  tablesMissing,
} from './outbox.messages.js';
import { OutboxMessage } from './store/outbox-message.entity.js';
import { qualifiedTables } from './store/outbox.tables.js';
import { errorText } from './util/error-text.js';

/**
 * What must hold before the outbox can run, checked at boot so a mistake fails the start with
 * what to do rather than the first flush: MikroORM maps the outbox entities to the tables the
 * module uses, and those tables exist.
 */
export async function checkOutboxSetup(orm: MikroORM, tables: ResolvedOutboxOptions['tables']): Promise<void> {
  checkEntities(orm, tables);
  await checkTables(orm, tables);
}

function checkEntities(orm: MikroORM, tables: ResolvedOutboxOptions['tables']): void {
  const meta = orm.getMetadata().find(OutboxMessage);
  if (!meta) throw new OutboxSetupError(entitiesNotRegistered());
  const { schema, outbox } = tables;
  if (meta.tableName !== outbox || (schema ?? undefined) !== (meta.schema ?? undefined)) {
    const ormTable = `${meta.schema ? `${meta.schema}.` : ''}${meta.tableName}`;
    throw new OutboxSetupError(entitiesDisagree(ormTable, `${schema ? `${schema}.` : ''}${outbox}`));
  }
}

async function checkTables(orm: MikroORM, tables: ResolvedOutboxOptions['tables']): Promise<void> {
  const { outbox, inbox } = qualifiedTables(tables);
  let found: Array<{ outbox: string | null; inbox: string | null }>;
  try {
    found = await orm.em
      .getConnection()
      .execute(`select to_regclass(?) as outbox, to_regclass(?) as inbox`, [outbox, inbox]);
  } catch (error) {
    throw new OutboxSetupError(databaseUnreachableAtBoot(errorText(error)), { cause: error });
  }
  const missing = [found[0].outbox ? '' : outbox, found[0].inbox ? '' : inbox].filter(Boolean);
  if (missing.length > 0) throw new OutboxSetupError(tablesMissing(missing));
}
