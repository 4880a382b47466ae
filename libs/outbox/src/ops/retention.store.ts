import type { MikroORM, QueryResult } from '@mikro-orm/core';
import { isMessageId } from '../message/message-id.js';
import { qualifiedTables, type Tables } from '../message/outbox.tables.js';

/**
 * The cleanup's two statements, in plain SQL. Each deletes at most `limit` rows chosen with
 * SKIP LOCKED and commits on its own, so it never waits on a relay's claim or a handler's
 * inbox mark, and never holds many locks for long.
 */
export class RetentionStore {
  private readonly dispatchedSql: string;
  private readonly inboxSql: string;

  constructor(
    private readonly orm: MikroORM,
    tables: Tables,
  ) {
    const { outbox, inbox } = qualifiedTables(tables);
    // Pending rows have dispatched_at null, which never compares true: they are never deleted.
    this.dispatchedSql = `delete from ${outbox} where id in (
      select id from ${outbox}
      where dispatched_at < now() - ? * interval '1 second'
      order by dispatched_at limit ? for update skip locked)`;
    this.inboxSql = `delete from ${inbox} where (message_id, handler) in (
      select message_id, handler from ${inbox}
      where processed_at < now() - ? * interval '1 second' and not (message_id = any(?::uuid[]))
      order by processed_at limit ? for update skip locked)`;
  }

  /** Deletes up to `limit` outbox rows dispatched more than `afterSeconds` ago; returns how many. */
  async deleteDispatched(afterSeconds: number, limit: number): Promise<number> {
    return this.run(this.dispatchedSql, [afterSeconds, limit]);
  }

  /** Deletes up to `limit` inbox marks older than `afterSeconds`, except those of `keepMessageIds`; returns how many. */
  async deleteInbox(afterSeconds: number, keepMessageIds: readonly string[], limit: number): Promise<number> {
    // Only uuids go into the array literal; any other job id cannot be an outbox message anyway.
    const keep = `{${keepMessageIds.filter(isMessageId).join(',')}}`;
    return this.run(this.inboxSql, [afterSeconds, keep, limit]);
  }

  private async run(sql: string, params: unknown[]): Promise<number> {
    const result = await this.orm.em.getConnection('write').execute<QueryResult>(sql, params, 'run');
    return result.affectedRows;
  }
}
