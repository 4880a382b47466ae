import type { EntityManager } from '@mikro-orm/postgresql';
import { qualifiedTables, type Tables } from '../store/outbox.tables.js';

/** Where an ordered handler stands on one key of one source. */
export interface KeyPlace {
  handler: string;
  source: string;
  key: string;
}

/**
 * Order per key on the consuming side, in the consumer's own database: for each ordered handler,
 * source and key, the last place handled (`last_seq`) and the messages that arrived before their
 * turn (parked). The position row is locked inside the handler's transaction, so two messages of
 * one key never run at once for one handler, and the check commits with the handler's writes.
 */
export class KeyOrderStore {
  private readonly lockSql: string;
  private readonly parkSql: string;
  private readonly advanceSql: string;
  private readonly blockSql: string;
  private readonly lastSql: string;
  private readonly parkedAtSql: string;

  constructor(tables: Tables) {
    const { inboxPosition: position, inboxParked: parked } = qualifiedTables(tables);
    const at = 'handler = ? and source = ? and key = ?';
    // An upsert that always returns the row and always locks it, in one statement.
    this.lockSql = `insert into ${position} (handler, source, key) values (?, ?, ?)
      on conflict (handler, source, key) do update set handler = excluded.handler
      returning last_seq::text as last`;
    this.parkSql = `insert into ${parked} (handler, source, key, seq, message_id) values (?, ?, ?, ?, ?)
      on conflict do nothing`;
    this.advanceSql = `with moved as (
        update ${position} set last_seq = ?, updated_at = now(),
          blocked_seq = null, blocked_message_id = null, blocked_error = null, blocked_at = null
        where ${at}),
      done as (delete from ${parked} where ${at} and seq <= ?)
      select message_id as "messageId" from ${parked} where ${at} and seq = ?`;
    // Only the message whose turn it is can block its key: a later one is parked, not blocking.
    this.blockSql = `update ${position}
      set blocked_seq = ?, blocked_message_id = ?, blocked_error = ?, blocked_at = coalesce(blocked_at, now())
      where ${at} and last_seq = ?`;
    this.lastSql = `select last_seq::text as last from ${position} where ${at}`;
    this.parkedAtSql = `select message_id as "messageId" from ${parked} where ${at} and seq = ?`;
  }

  /** Locks the handler's position on the key (creating it at 0) and returns the last place handled. */
  async lock(em: EntityManager, place: KeyPlace): Promise<number> {
    const [row] = await em.execute<Array<{ last: string }>>(this.lockSql, [place.handler, place.source, place.key]);
    return Number(row.last);
  }

  /** Records that the message at `seq` arrived before its turn. */
  async park(em: EntityManager, place: KeyPlace, seq: number, messageId: string): Promise<void> {
    await em.execute(this.parkSql, [place.handler, place.source, place.key, seq, messageId], 'run');
  }

  /** Moves the position to `seq` and returns the message parked at `seq + 1`, whose turn it now is. */
  async advance(em: EntityManager, place: KeyPlace, seq: number): Promise<string | undefined> {
    const at = [place.handler, place.source, place.key];
    const rows = await em.execute<Array<{ messageId: string }>>(this.advanceSql, [
      seq,
      ...at,
      ...at,
      seq,
      ...at,
      seq + 1,
    ]);
    return rows[0]?.messageId;
  }

  /** The message parked at `seq`, if one is. */
  async parkedAt(em: EntityManager, place: KeyPlace, seq: number): Promise<string | undefined> {
    const rows = await em.execute<Array<{ messageId: string }>>(this.parkedAtSql, [
      place.handler,
      place.source,
      place.key,
      seq,
    ]);
    return rows[0]?.messageId;
  }

  /** Marks the key as held back by the message at `seq` (its turn, and it failed); cleared when it moves on. */
  async block(em: EntityManager, place: KeyPlace, seq: number, messageId: string, error: string): Promise<void> {
    const params = [seq, messageId, error.slice(0, 2000), place.handler, place.source, place.key, seq - 1];
    await em.execute(this.blockSql, params, 'run');
  }

  /** The last place handled, without a lock; 0 when the handler never saw the key. */
  async last(em: EntityManager, place: KeyPlace): Promise<number> {
    const [row] = await em.execute<Array<{ last: string }>>(this.lastSql, [place.handler, place.source, place.key]);
    return row ? Number(row.last) : 0;
  }
}
