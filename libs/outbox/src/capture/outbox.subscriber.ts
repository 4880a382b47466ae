import {
  helper,
  type EntityManager,
  type EventSubscriber,
  type FlushEventArgs,
  type Transaction,
  type TransactionEventArgs,
  type UnitOfWork,
} from '@mikro-orm/core';
import { OutboxMessage } from '../store/outbox-message.entity.js';
import { insertOutboxRows, type LeaseAtInsert } from '../store/outbox-row.insert.js';
import { outboxEntityOf, type OutboxRow } from '../store/outbox-row.js';
import { forgetEvents, isAggregate, pendingEvents } from './aggregate-events.js';
import type { CommitOutcome } from './commit-outcomes.js';
import type { CommitTracker } from './commit-tracker.js';
import type { OutboxRowFactory, RowOrigin } from './outbox-row.factory.js';
import type { PendingMessages } from './pending-messages.js';

type RowWriter = (
  em: EntityManager,
  rows: OutboxRow[],
  ctx: Transaction | undefined,
  /** `ctx` commits next, and its COMMIT may carry the rows. */
  atCommit: boolean,
  lease: LeaseAtInsert | undefined,
) => Promise<void>;

/** What spares a flush that writes rows round trips to PostgreSQL (capture's hooks on the `pg` pool). */
export interface FlushMessages {
  /** The rows may wait for COMMIT and travel with it. */
  rowsAtCommit(): boolean;
  /** The flush is about to open its transaction: returns whether to claim that transaction's BEGIN. */
  beginExpected(): boolean;
  /** In that transaction, right after its BEGIN: BEGIN may travel with the first statement. */
  claimBegin(transaction: Transaction): Promise<void>;
  /** In the caller's transaction: what its COMMIT will be answered, or undefined if that cannot be seen. */
  watchCommit(transaction: Transaction): Promise<CommitOutcome | undefined>;
}

/** Every statement in a message of its own. */
const SEPARATE: FlushMessages = {
  rowsAtCommit: () => false,
  beginExpected: () => false,
  claimBegin: async () => undefined,
  watchCommit: async () => undefined,
};

/** One row a flush adds, and the event (and aggregate, if any) it came from. */
interface Row {
  aggregate: object | null;
  event: object;
  row: OutboxRow;
  /** The entity the row was written as, when the flush wrote it as a MikroORM change set. */
  entity?: OutboxMessage;
}

/** What one flush of a unit of work adds; kept until it succeeds, so a retried flush can reuse its ids. */
interface Flush {
  rows: Row[];
  /** Per aggregate, the events this flush writes: forgotten once it succeeds. */
  written: Map<object, Set<object>>;
  /** How many of the unit's pending `publish()` messages it writes. */
  published: number;
  /** Aggregates with a change set: their lifecycle hooks run during the flush and may apply events. */
  hooked: object[];
  /** The application persisted outbox rows itself. */
  persistedRows: boolean;
  /**
   * Aggregates whose primary key the database generates: unknown when their rows were built, so
   * the rows get their aggregate id and key once the INSERT gave one, in the same transaction.
   */
  unkeyed: Map<object, OutboxRow[]>;
  /**
   * Rows written by one multi-row INSERT just before the flush's writes commit, rather than as
   * MikroORM change sets (whose bookkeeping cost more than the row itself). Only in the caller's
   * transaction, or when the flush writes something else too: a flush of outbox rows alone opens
   * no transaction of its own without them.
   */
  deferred: OutboxRow[] | undefined;
  /** The flush opens its own transaction (it does not run inside one); set once that transaction started. */
  ownTransaction: boolean;
  transaction: Transaction | undefined;
  /** Its BEGIN may be held for the first statement: the transaction claims it once started. */
  claimsBegin: boolean;
  /** In the caller's transaction, with rows leased: what PostgreSQL answers to its COMMIT. */
  outcome: CommitOutcome | undefined;
}

/**
 * Turns the events of every aggregate in a flush, and the messages published on its unit of
 * work, into outbox rows of that same flush, so they commit or roll back with the state. Rows join
 * through `uow.computeChangeSet`: `em.persist` inside `onFlush` would be silently dropped. Events
 * applied by lifecycle hooks while the flush writes are added before its transaction commits.
 */
export class OutboxSubscriber implements EventSubscriber {
  private readonly flushes = new WeakMap<UnitOfWork, Flush>();

  constructor(
    private readonly rows: OutboxRowFactory,
    private readonly pending: PendingMessages,
    private readonly commits: CommitTracker,
    /** Writes rows in a transaction; the multi-row INSERT, or a test's recorder. */
    private readonly write: RowWriter = insertOutboxRows,
    private readonly messages: FlushMessages = SEPARATE,
    /** With `relay.dispatchOnCommit`: the rows are written leased to this process, which enqueues them. */
    private readonly lease?: LeaseAtInsert,
  ) {}

  onFlush({ uow, em }: FlushEventArgs): void {
    // Still here: the last flush of this unit failed. Its rows are not in the database.
    const failed = this.flushes.get(uow);
    const retry = failed && idsToReuse(uow, failed);
    const flush: Flush = {
      rows: [],
      written: new Map(),
      published: 0,
      hooked: [],
      persistedRows: false,
      unkeyed: new Map(),
      deferred: uow.getChangeSets().length > 0 || em.isInTransaction() ? [] : undefined,
      ownTransaction: !em.isInTransaction(),
      transaction: undefined,
      claimsBegin: false,
      outcome: undefined,
    };
    const seen = new Set<object>();
    for (const changeSet of uow.getChangeSets()) {
      const entity = changeSet.entity as object;
      if (entity instanceof OutboxMessage) flush.persistedRows = true;
      else if (isAggregate(entity)) {
        flush.hooked.push(entity);
        this.capture(uow, entity, seen, flush, retry);
      }
    }
    // An aggregate that only applied events has no change set, so the identity map is read too.
    for (const entity of uow.getIdentityMap()) this.capture(uow, entity, seen, flush, retry);
    this.addPublished(uow, flush);
    this.flushes.set(uow, flush);
  }

  beforeTransactionStart({ uow, transaction }: TransactionEventArgs): void {
    const flush = uow && this.flushes.get(uow);
    // `transaction` names the parent of a savepoint: only the flush's own BEGIN is expected.
    if (!flush?.ownTransaction || flush.transaction || transaction || flush.rows.length === 0) return;
    flush.claimsBegin = this.messages.beginExpected();
  }

  async afterTransactionStart({ uow, transaction }: TransactionEventArgs): Promise<void> {
    const flush = uow && this.flushes.get(uow);
    if (!flush?.ownTransaction || flush.transaction || !transaction) return;
    flush.transaction = transaction;
    if (flush.claimsBegin) await this.messages.claimBegin(transaction);
  }

  /** The flush's own transaction is about to commit: the last moment to add what its hooks raised. */
  async beforeTransactionCommit({ uow, em, transaction }: TransactionEventArgs): Promise<void> {
    const flush = uow && this.flushes.get(uow);
    if (flush && transaction && flush.transaction === transaction) {
      await this.addLate(uow, em, flush, transaction, this.messages.rowsAtCommit());
    }
  }

  async afterFlush({ uow, em }: FlushEventArgs): Promise<void> {
    const flush = this.flushes.get(uow);
    if (!flush) return;
    // Inside the caller's transaction (or without one), hooks' events join it here.
    if (!flush.transaction) await this.addLate(uow, em, flush, em.getTransactionContext(), false);
    this.flushes.delete(uow);
    for (const [aggregate, events] of flush.written) forgetEvents(aggregate, events);
    this.pending.written(uow, flush.published);
    // Written rows leave the identity map: a long-lived EntityManager would otherwise grow by
    // every message and compare them all again at each flush.
    for (const { entity } of flush.rows) if (entity) uow.unsetIdentity(entity);
    if (flush.rows.length === 0 && !flush.persistedRows) return;
    this.commits.flushed(em, {
      events: this.commits.wantsEvents() ? flush.rows.map((row) => row.event) : undefined,
      types: this.commits.wantsTypes() ? flush.rows.map((row) => row.row.type) : undefined,
      leased: this.lease ? flush.rows.filter((row) => row.row.leased).map((row) => row.row) : [],
      wakesRelay: flush.persistedRows || flush.rows.some((row) => !row.row.leased),
      outcome: flush.outcome,
    });
  }

  private capture(uow: UnitOfWork, entity: object, seen: Set<object>, flush: Flush, retry?: Reuse): void {
    if (seen.has(entity) || !isAggregate(entity)) return;
    seen.add(entity);
    const events = pendingEvents(entity);
    if (events.length === 0) return;
    const origin = originOf(entity);
    const written = new Set<object>();
    for (const event of events) {
      const row = reused(retry, entity, event) ?? this.rows.create(event, origin);
      origin.correlationId ??= row.id;
      flush.rows.push({ aggregate: entity, event, row, entity: this.add(uow, flush, row) });
      written.add(event);
      if (origin.aggregateId === null) {
        const unkeyed = flush.unkeyed.get(entity);
        if (unkeyed) unkeyed.push(row);
        else flush.unkeyed.set(entity, [row]);
      }
    }
    flush.written.set(entity, written);
  }

  /**
   * Rows are leased in a flush's own transaction, which commits right after its statements. In
   * the caller's transaction a later statement may fail and be caught: PostgreSQL then answers
   * COMMIT with a silent ROLLBACK, MikroORM reports a commit, and rows that do not exist would be
   * enqueued. There they are leased only if that answer will be seen (`outcome`); otherwise they
   * go through a relay's claim, which only finds committed rows.
   */
  private async leaseIn(flush: Flush, ctx: Transaction | undefined): Promise<LeaseAtInsert | undefined> {
    if (!this.lease || flush.ownTransaction) return this.lease;
    flush.outcome ??= ctx && (await this.messages.watchCommit(ctx));
    return flush.outcome && this.lease;
  }

  /** Returns the entity when the row joins the flush as a change set. */
  private add(uow: UnitOfWork, flush: Flush, row: OutboxRow): OutboxMessage | undefined {
    if (flush.deferred) {
      flush.deferred.push(row);
      return undefined;
    }
    // Only a flush of outbox rows alone, in a transaction of its own (`deferred` covers the rest).
    const entity = outboxEntityOf(row, this.lease);
    uow.computeChangeSet(entity);
    return entity;
  }

  private addPublished(uow: UnitOfWork, flush: Flush): void {
    const pending = this.pending.of(uow);
    if (!pending) return;
    for (const { event, row } of pending) {
      flush.rows.push({ aggregate: null, event, row, entity: this.add(uow, flush, row) });
    }
    flush.published = pending.length;
  }

  /** Events applied, and messages published, while the flush was writing; inserted in its transaction. */
  private async addLate(
    uow: UnitOfWork,
    em: EntityManager,
    flush: Flush,
    ctx: Transaction | undefined,
    atCommit: boolean,
  ): Promise<void> {
    await this.keyGeneratedIds(em, flush, ctx);
    const late: Row[] = [];
    // The aggregates whose hooks ran, and those the flush wrote events of (another entity's hook may reach them).
    for (const [aggregate, written] of flush.written) this.lateEvents(aggregate, written, late);
    for (const aggregate of flush.hooked) {
      if (!flush.written.has(aggregate)) this.lateEvents(aggregate, undefined, late);
    }
    const pending = this.pending.of(uow) ?? [];
    for (let i = flush.published; i < pending.length; i++) {
      late.push({ aggregate: null, event: pending[i].event, row: pending[i].row });
    }
    const rows = [...(flush.deferred ?? []), ...late.map(({ row }) => row)];
    flush.deferred = undefined;
    if (rows.length > 0) await this.write(em, rows, ctx, atCommit, await this.leaseIn(flush, ctx));
    if (late.length === 0) return;
    flush.published = pending.length;
    for (const row of late) {
      flush.rows.push(row);
      if (!row.aggregate) continue;
      const written = flush.written.get(row.aggregate);
      if (written) written.add(row.event);
      else flush.written.set(row.aggregate, new Set([row.event]));
    }
  }

  /**
   * Rows of aggregates whose id the database generated at INSERT: the id is known now, so their
   * rows get it (and their ordering key) before the transaction commits — in memory for rows not
   * written yet, by one UPDATE per aggregate for rows already written, none for client-side ids.
   */
  private async keyGeneratedIds(em: EntityManager, flush: Flush, ctx: Transaction | undefined): Promise<void> {
    const unwritten = new Set(flush.deferred ?? []);
    for (const [aggregate, rows] of flush.unkeyed) {
      const { aggregateType, aggregateId } = originOf(aggregate);
      if (aggregateId === null) continue;
      const key = `${aggregateType}:${aggregateId}`;
      const ids = rows.filter((row) => row.key === null && !unwritten.has(row)).map((row) => row.id);
      for (const row of rows) {
        row.aggregateId = aggregateId;
        row.key ??= key;
      }
      if (ids.length > 0) await em.nativeUpdate(OutboxMessage, { id: { $in: ids } }, { aggregateId, key }, { ctx });
    }
    flush.unkeyed.clear();
  }

  private lateEvents(aggregate: object, written: ReadonlySet<object> | undefined, late: Row[]): void {
    let origin: RowOrigin | undefined;
    for (const event of pendingEvents(aggregate)) {
      if (written?.has(event)) continue;
      origin ??= originOf(aggregate);
      const row = this.rows.create(event, origin);
      origin.correlationId ??= row.id;
      late.push({ aggregate, event, row });
    }
  }
}

type Reuse = Map<object, Row[]>;

/**
 * The rows a failed flush built, by event: the retry writes each event under the id it had, so a
 * commit whose outcome was unknown (connection lost during COMMIT) cannot write it twice. Rows the
 * failed flush wrote as entities may be held by MikroORM as written; they leave its identity map.
 */
function idsToReuse(uow: UnitOfWork, failed: Flush): Reuse {
  const byEvent: Reuse = new Map();
  for (const row of failed.rows) {
    if (row.entity) uow.unsetIdentity(row.entity);
    if (!row.aggregate) continue;
    const same = byEvent.get(row.event);
    if (same) same.push(row);
    else byEvent.set(row.event, [row]);
  }
  return byEvent;
}

/** The failed flush's row for this event of this aggregate: written again under the same id. */
function reused(retry: Reuse | undefined, aggregate: object, event: object): OutboxRow | undefined {
  const candidates = retry?.get(event);
  const index = candidates?.findIndex((row) => row.aggregate === aggregate) ?? -1;
  if (index < 0) return undefined;
  return candidates!.splice(index, 1)[0].row;
}

function originOf(aggregate: object): RowOrigin {
  const wrapped = helper(aggregate);
  return { aggregateType: wrapped.__meta.className, aggregateId: primaryKeyOf(wrapped) };
}

function primaryKeyOf(wrapped: { getPrimaryKey(): unknown; getSerializedPrimaryKey(): unknown }): string | null {
  try {
    // The raw key first: serialising a key the database has not generated yet gives "undefined".
    const raw = wrapped.getPrimaryKey();
    if (raw === undefined || raw === null || raw === '') return null;
    return String(wrapped.getSerializedPrimaryKey());
  } catch {
    // A primary key the database has not generated yet: the row keeps the aggregate type only.
    return null;
  }
}
