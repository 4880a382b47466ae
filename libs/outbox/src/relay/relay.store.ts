import type { MikroORM } from '@mikro-orm/core';
import { uuidArray } from '../store/sql-arrays.js';
import { qualifiedTables, type Tables } from '../store/outbox.tables.js';

/** A claimed row, as the relay needs it: payload and headers stay JSON text. */
export interface ClaimedRow {
  id: string;
  type: string;
  payload: string;
  headers: string;
  aggregate_type: string | null;
  aggregate_id: string | null;
}

export interface RelayStoreOptions {
  /** Who claims: only rows this relay still holds are marked or released by it. */
  relayId: string;
  deleteOnDispatch: boolean;
  /** Rows claimed this many times without being handed over are no longer claimed (stuck). */
  maxAttempts: number;
}

/**
 * The relay's three statements, in plain SQL on the ORM's connection: no entity manager, no
 * identity map, so memory stays flat however long the backlog is.
 */
export class RelayStore {
  private readonly claimSql: string;
  private readonly markSql: string;
  private readonly releaseSql: string;

  constructor(
    private readonly orm: MikroORM,
    tables: Tables,
    private readonly options: RelayStoreOptions,
  ) {
    const { outbox } = qualifiedTables(tables);
    // A row whose lease expired may be held by another relay by now; it marks the row itself.
    const mine = 'id = any(?::uuid[]) and claimed_by = ?';
    const mark = options.deleteOnDispatch
      ? `delete from ${outbox} where ${mine}`
      : `update ${outbox} set dispatched_at = now(), locked_until = null, last_error = null where ${mine}`;
    // SKIP LOCKED lets relays in many processes claim disjoint batches; the lease (locked_until)
    // hands a batch to another relay if this one dies before marking it. The previous batch's
    // mark rides in the same statement, saving a round trip per batch; the rows it marks are
    // excluded from the claim explicitly, so one statement never touches a row twice.
    this.claimSql = `with marked as (${mark})
      update ${outbox} o
      set locked_until = now() + ? * interval '1 millisecond', attempts = o.attempts + 1, claimed_by = ?
      from (select id from ${outbox}
            where dispatched_at is null
              and (available_at is null or available_at <= now())
              and (locked_until is null or locked_until < now())
              and attempts < ?
              and id <> all(?::uuid[])
            order by id limit ? for update skip locked) due
      where o.id = due.id
      returning o.id, o.type, o.payload::text as payload, o.headers::text as headers, o.aggregate_type, o.aggregate_id`;
    this.markSql = mark;
    // An attempt is only spent when the enqueue itself failed; an unreachable Redis spends none.
    this.releaseSql = `update ${outbox} set locked_until = null, last_error = ?, attempts = attempts - ?
      where id = any(?::uuid[]) and claimed_by = ? and dispatched_at is null`;
  }

  /** Claims up to `limit` due rows, and marks `enqueued` (their enqueue resolved) dispatched in the same statement. */
  async claim(limit: number, leaseMs: number, enqueued: readonly string[] = []): Promise<ClaimedRow[]> {
    const ids = uuidArray(enqueued);
    const { relayId, maxAttempts } = this.options;
    const rows = (await this.connection().execute(this.claimSql, [
      ids,
      relayId,
      leaseMs,
      relayId,
      maxAttempts,
      ids,
      limit,
    ])) as ClaimedRow[];
    // RETURNING has no order; ids are time ordered, so sorting restores commit order.
    return rows.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  async markDispatched(ids: readonly string[]): Promise<void> {
    await this.connection().execute(this.markSql, [uuidArray(ids), this.options.relayId], 'run');
  }

  /**
   * Hands rows back before their lease ends; `spentAttempt` is false when the failure was not
   * theirs (Redis unreachable, shutdown).
   */
  async release(ids: readonly string[], error: string, spentAttempt: boolean): Promise<void> {
    await this.connection().execute(
      this.releaseSql,
      [error.slice(0, 2000), spentAttempt ? 0 : 1, uuidArray(ids), this.options.relayId],
      'run',
    );
  }

  private connection() {
    return this.orm.em.getConnection('write');
  }
}
