import type { MikroORM } from '@mikro-orm/core';
import type { AbstractSqlConnection } from '@mikro-orm/postgresql';
import { CompiledQuery } from 'kysely';
import { qualifiedTables, type Tables } from '../store/outbox.tables.js';
import { textArray, uuidArray } from '../store/sql-arrays.js';

/** A claimed row, as the relay needs it: payload and headers stay JSON text. */
export interface ClaimedRow {
  id: string;
  type: string;
  payload: string;
  headers: string;
  aggregate_type: string | null;
  aggregate_id: string | null;
  key: string | null;
  /** Commit order (the database's counter); a string, as PostgreSQL returns bigint. */
  seq: string;
  /** Place in its key's order per ordered route (`service/handler`); `{}` when none. */
  routes: Record<string, number>;
}

/** A row whose enqueue resolved, and the services it went to (empty: no subscriber). */
export interface DispatchedRow {
  id: string;
  /** Its event type, for the dispatched-messages counter. */
  type: string;
  routedTo: readonly string[];
}

export interface RelayStoreOptions {
  /** Who claims: only rows this relay still holds are marked or released by it. */
  relayId: string;
  deleteOnDispatch: boolean;
  /** Rows claimed this many times without being handed over are no longer claimed (stuck). */
  maxAttempts: number;
}

/**
 * Lets the statement's transaction commit without waiting for its WAL to reach disk. The relay's
 * claims and marks are bookkeeping: a PostgreSQL crash that forgets the last of them (up to three
 * `wal_writer_delay`s) leaves those rows pending, to be dispatched again, as after a relay killed
 * between its enqueue and its mark; BullMQ drops a job id it still holds, the inbox the rest. The
 * rows themselves are the application's commits and keep its setting. An uncorrelated subquery in
 * a condition on no column is evaluated once before the statement's first row, whatever it finds.
 */
const NO_WAL_WAIT = `(select set_config('synchronous_commit', 'off', true)) is not null`;

/** Ordered routes (`service/handler`) per event type: what a claim allocates key positions for. */
export type OrderedRoutes = Readonly<Record<string, readonly string[]>>;

/**
 * The relay's statements, in plain SQL on the ORM's connection: no entity manager, no identity
 * map, so memory stays flat however long the backlog is.
 */
export class RelayStore {
  private readonly claimSql: string;
  private readonly orderedClaimSql: string;
  private readonly markSql: string;
  private readonly releaseSql: string;

  constructor(
    private readonly orm: MikroORM,
    tables: Tables,
    private readonly options: RelayStoreOptions,
  ) {
    const t = qualifiedTables(tables);
    // A row whose lease expired may be held by another relay by now; that relay marks it itself.
    // Deleted at dispatch, a row takes its key positions with it: it cannot be claimed again.
    // (Common table expressions, because PostgreSQL allows data-modifying ones only at the top.)
    const mark = options.deleteOnDispatch
      ? `marked as (delete from ${t.outbox} o using unnest($1::uuid[], $2::text[]) as m(id, routes)
            where o.id = m.id and o.claimed_by = $3::text returning o.id),
          marked_routes as (delete from ${t.outboxRoute} where message_id in (select id from marked))`
      : `marked as (update ${t.outbox} o set dispatched_at = now(), locked_until = null, last_error = null,
            routed_to = string_to_array(m.routes, ',')
          from unnest($1::uuid[], $2::text[]) as m(id, routes) where o.id = m.id and o.claimed_by = $3::text
          returning o.id)`;
    // SKIP LOCKED lets relays in many processes claim disjoint batches; the lease (locked_until)
    // hands a batch to another relay if this one dies before marking it. The previous batch's
    // mark rides in the same statement, saving a round trip per batch; the rows it marks are
    // excluded from the claim explicitly, so one statement never touches a row twice.
    const due = (extra: string) => `select id from ${t.outbox}
          where dispatched_at is null
            and (available_at is null or available_at <= now())
            and (locked_until is null or locked_until < now())
            and attempts < $5::int
            and id <> all($1::uuid[])${extra}
          order by seq limit $6::int for update skip locked`;
    const claim = (dueSql: string, extra = '') => `update ${t.outbox} o
        set locked_until = now() + $4::int * interval '1 millisecond', attempts = o.attempts + 1, claimed_by = $3::text
        from (${dueSql}) due
        where o.id = due.id${extra}
        returning o.id, o.type, o.payload::text as payload, o.headers::text as headers,
          o.aggregate_type, o.aggregate_id, o.key, o.seq::text as seq`;
    this.claimSql = `with ${mark} ${claim(due(''), `\n and ${NO_WAL_WAIT}`)}`;
    // With ordered handlers subscribed, one claim statement at a time holds each key (an advisory
    // lock, skipped by the others) and gives every ordered route of each keyed row its next place
    // in that key's order, in commit order (seq). A row claimed again after a crash keeps the
    // places it was given, so a consumer never sees a gap or the same place twice. Those places
    // must outlive a crash once handed out, so this statement waits for its WAL as usual.
    const oneKeyAtATime = '\n and (key is null or pg_try_advisory_xact_lock(hashtextextended(key, 1903)))';
    this.orderedClaimSql = `with ${mark},
      claimed as (${claim(due(oneKeyAtATime))}),
      wanted as (
        select c.id, c.key, c.seq::bigint as seq, r.route
        from claimed c
        join jsonb_each($7::jsonb) t(type, routes) on t.type = c.type
        cross join lateral jsonb_array_elements_text(t.routes) r(route)
        where c.key is not null),
      missing as (
        select w.* from wanted w
        where not exists (select 1 from ${t.outboxRoute} x where x.message_id = w.id and x.route = w.route)),
      counts as (select route, key, count(*)::bigint as n from missing group by route, key),
      bumped as (
        insert into ${t.outboxRouteSeq} (route, key, seq) select route, key, n from counts
        on conflict (route, key) do update set seq = ${t.outboxRouteSeq}.seq + excluded.seq
        returning route, key, seq),
      numbered as (
        select m.id, m.route, b.seq - c.n + row_number() over (partition by m.route, m.key order by m.seq) as seq
        from missing m join counts c using (route, key) join bumped b using (route, key)),
      stored as (
        insert into ${t.outboxRoute} (message_id, route, seq) select id, route, seq from numbered
        returning message_id, route, seq)
      select c.*, coalesce((
        select jsonb_object_agg(a.route, a.seq) from (
          select x.route, x.seq from ${t.outboxRoute} x where x.message_id = c.id
          union all select s.route, s.seq from stored s where s.message_id = c.id) a), '{}')::text as routes
      from claimed c`;
    this.markSql = `with ${mark} select count(*) from marked where ${NO_WAL_WAIT}`;
    // An attempt is only spent when the enqueue itself failed; an unreachable Redis spends none.
    this.releaseSql = `update ${t.outbox} set locked_until = null, last_error = $1::text, attempts = attempts - $2::int
      where id = any($3::uuid[]) and claimed_by = $4::text and dispatched_at is null`;
  }

  /**
   * Claims up to `limit` due rows in commit order, and marks `dispatched` (rows whose enqueue
   * resolved) in the same statement. With `ordered` routes, keyed rows also get their places.
   */
  async claim(
    limit: number,
    leaseMs: number,
    dispatched: readonly DispatchedRow[],
    ordered?: OrderedRoutes,
  ): Promise<ClaimedRow[]> {
    const params = [...this.markParams(dispatched), leaseMs, this.options.maxAttempts, limit];
    const rows = ordered
      ? (
          await this.query<Omit<ClaimedRow, 'routes'> & { routes: string }>(this.orderedClaimSql, [
            ...params,
            JSON.stringify(ordered),
          ])
        ).map((row) => ({ ...row, routes: JSON.parse(row.routes) as Record<string, number> }))
      : (await this.query<Omit<ClaimedRow, 'routes'>>(this.claimSql, params)).map((row) => ({ ...row, routes: {} }));
    // RETURNING has no order; the claim took them in commit order, so sorting restores it.
    return rows.sort((a, b) => Number(a.seq) - Number(b.seq));
  }

  async markDispatched(rows: readonly DispatchedRow[]): Promise<void> {
    await this.query(this.markSql, this.markParams(rows));
  }

  /**
   * Hands rows back before their lease ends; `spentAttempt` is false when the failure was not
   * theirs (Redis unreachable, shutdown, subscriptions changed under the claim).
   */
  async release(ids: readonly string[], error: string, spentAttempt: boolean): Promise<void> {
    await this.query(this.releaseSql, [
      error.slice(0, 2000),
      spentAttempt ? 0 : 1,
      uuidArray(ids),
      this.options.relayId,
    ]);
  }

  /** `$1` the ids (also what the claim leaves out), `$2` where each went, `$3` this relay. */
  private markParams(rows: readonly DispatchedRow[]): [string, string, string] {
    return [
      uuidArray(rows.map((row) => row.id)),
      textArray(rows.map((row) => row.routedTo.join(','))),
      this.options.relayId,
    ];
  }

  /**
   * Bind parameters, straight to the pool: MikroORM's `execute` would print a batch's id arrays
   * into the text one character at a time (240 MB of garbage per 100,000 rows relayed, a sixth of
   * what the relay allocated in that drain).
   */
  private async query<R>(sql: string, params: readonly unknown[]): Promise<R[]> {
    const connection = this.orm.em.getConnection('write') as AbstractSqlConnection;
    const result = await connection.getClient().executeQuery<R>(CompiledQuery.raw(sql, [...params]));
    return [...result.rows];
  }
}
