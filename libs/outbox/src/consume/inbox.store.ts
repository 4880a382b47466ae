import type { EntityManager } from '@mikro-orm/postgresql';
import { qualifiedTables, type Tables } from '../store/outbox.tables.js';

/**
 * The inbox: one row per (message, handler) that finished. Inserted inside the handler's
 * transaction, so the mark commits with the handler's writes. A concurrent duplicate waits on
 * the key and then sees the conflict; a rolled-back attempt leaves no mark.
 */
export class InboxStore {
  private readonly markSql: string;

  constructor(tables: Tables) {
    this.markSql = `insert into ${qualifiedTables(tables).inbox} (message_id, handler) values (?, ?)
      on conflict do nothing returning 1 as fresh`;
  }

  /** True when this handler has not processed the message before (and now owns it in this transaction). */
  async markFirstRun(em: EntityManager, messageId: string, handler: string): Promise<boolean> {
    const rows = await em.execute(this.markSql, [messageId, handler]);
    return rows.length === 1;
  }
}
