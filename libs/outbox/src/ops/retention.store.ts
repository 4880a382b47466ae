import type { MikroORM, QueryResult } from '@mikro-orm/core';
import { qualifiedTables, type Tables } from '../store/outbox.tables.js';
import { textArray, uuidArray } from '../store/sql-arrays.js';

/** An inbox mark old enough to delete, if its message can no longer run. */
export interface InboxMark {
  messageId: string;
  handler: string;
  /** Exact text of `processed_at`: a JS Date would drop the microseconds the page cursor needs. */
  processedAt: string;
}

/**
 * The cleanup's statements, in plain SQL. Deletes take at most `limit` rows and commit on their
 * own, so they never hold many locks for long; dispatched outbox rows are chosen with SKIP LOCKED
 * so a delete never waits on a relay's claim.
 */
export class RetentionStore {
  private readonly dispatchedSql: string;
  private readonly oldMarksSql: string;
  private readonly deleteMarksSql: string;

  constructor(
    private readonly orm: MikroORM,
    tables: Tables,
  ) {
    const { outbox, inbox, outboxRoute } = qualifiedTables(tables);
    // Pending rows have dispatched_at null, which never compares true: they are never deleted.
    // A row's key positions (ordered routes) go with it.
    this.dispatchedSql = `with gone as (
        delete from ${outbox} where id in (
          select id from ${outbox}
          where dispatched_at < now() - ? * interval '1 second'
          order by dispatched_at limit ? for update skip locked)
        returning id),
      routes as (delete from ${outboxRoute} where message_id in (select id from gone))
      select count(*)::int as deleted from gone`;
    this.oldMarksSql = `select message_id as "messageId", handler, processed_at::text as "processedAt" from ${inbox}
      where processed_at < now() - ? * interval '1 second'
        and (processed_at, message_id, handler) > (?::timestamptz, ?::uuid, ?)
      order by processed_at, message_id, handler limit ?`;
    // The age is checked again: a mark refreshed since it was read is young again and stays.
    this.deleteMarksSql = `delete from ${inbox} i using unnest(?::uuid[], ?::text[]) as old(message_id, handler)
      where i.message_id = old.message_id and i.handler = old.handler
        and i.processed_at < now() - ? * interval '1 second'`;
  }

  /** Deletes up to `limit` outbox rows dispatched more than `afterSeconds` ago; returns how many. */
  async deleteDispatched(afterSeconds: number, limit: number): Promise<number> {
    const [row] = (await this.connection().execute(this.dispatchedSql, [afterSeconds, limit])) as Array<{
      deleted: number;
    }>;
    return row.deleted;
  }

  /** Up to `limit` marks older than `afterSeconds`, oldest first, after `cursor` (the previous page's last). */
  async oldInboxMarks(afterSeconds: number, cursor: InboxMark | undefined, limit: number): Promise<InboxMark[]> {
    const from = cursor ?? { processedAt: '-infinity', messageId: '00000000-0000-0000-0000-000000000000', handler: '' };
    return this.connection().execute<InboxMark[]>(this.oldMarksSql, [
      afterSeconds,
      from.processedAt,
      from.messageId,
      from.handler,
      limit,
    ]);
  }

  /** Deletes these marks if they are still older than `afterSeconds`; returns how many went. */
  async deleteInboxMarks(marks: readonly InboxMark[], afterSeconds: number): Promise<number> {
    if (marks.length === 0) return 0;
    const ids = uuidArray(marks.map((mark) => mark.messageId));
    const handlers = textArray(marks.map((mark) => mark.handler));
    const result = await this.connection().execute<QueryResult>(
      this.deleteMarksSql,
      [ids, handlers, afterSeconds],
      'run',
    );
    return result.affectedRows;
  }

  private connection() {
    return this.orm.em.getConnection('write');
  }
}
