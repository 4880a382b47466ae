import { beforeEach, describe, expect, it, jest } from '@jest/globals';
import type { EntityManager, FlushEventArgs, Transaction, TransactionEventArgs, UnitOfWork } from '@mikro-orm/core';
import { AggregateRoot } from '@nestjs/cqrs';
import type { OutboxHeaders } from '../message/message-headers.js';
import { OutboxEvent } from '../message/event-type.js';
import { OutboxPayloadError } from '../outbox.errors.js';
import { OutboxMessage } from '../store/outbox-message.entity.js';
import type { LeaseAtInsert as Lease } from '../store/outbox-row.insert.js';
import type { OutboxRow } from '../store/outbox-row.js';
import type { CommitOutcome } from './commit-outcomes.js';
import type { CommitTracker, FlushedRows } from './commit-tracker.js';
import { OutboxTracing } from '../telemetry/outbox.tracing.js';
import { OutboxRowFactory } from './outbox-row.factory.js';
import { OutboxSubscriber } from './outbox.subscriber.js';
import { PendingMessages } from './pending-messages.js';

@OutboxEvent('spec.capture.order-placed.v1')
class OrderPlaced {
  constructor(readonly orderId: string) {}
}

@OutboxEvent('spec.capture.order-paid.v1')
class OrderPaid {
  constructor(readonly amount: number) {}
}

/**
 * An aggregate entity as MikroORM manages it: `helper(entity)` reads `__helper`, which gives the
 * entity's class name and primary key (undefined until the database generated it).
 */
class Order extends AggregateRoot {
  constructor(public id: string | undefined) {
    super();
  }

  get __helper() {
    return {
      __meta: { className: 'Order' },
      getPrimaryKey: () => this.id,
      getSerializedPrimaryKey: () => this.id,
    };
  }
}

/** An entity that is not an aggregate. */
class Customer {
  name = 'Ada';
}

/** The parts of MikroORM's unit of work the subscriber uses, recording what it is asked. */
function fakeUnit() {
  const changed: object[] = [];
  const identityMap: object[] = [];
  const computed: OutboxMessage[] = [];
  const unset: OutboxMessage[] = [];
  const uow = {
    getChangeSets: () => changed.map((entity) => ({ entity })),
    getIdentityMap: () => identityMap,
    computeChangeSet: (row: OutboxMessage) => {
      computed.push(row);
    },
    unsetIdentity: (row: OutboxMessage) => {
      unset.push(row);
    },
  };
  return { uow: uow as unknown as UnitOfWork, changed, identityMap, computed, unset };
}

/**
 * The parts of an EntityManager the subscriber uses; `inTransaction` is the caller's transaction,
 * if any. `inserted` records the subscriber's own multi-row INSERTs (through `write`).
 */
function fakeEm(inTransaction?: Transaction) {
  const inserted: Array<{ rows: OutboxRow[]; ctx: unknown }> = [];
  const updated: Array<{ where: unknown; values: unknown; ctx: unknown }> = [];
  const em = {
    isInTransaction: () => inTransaction !== undefined,
    getTransactionContext: () => inTransaction,
    nativeUpdate: async (_entity: unknown, where: unknown, values: unknown, options: { ctx: unknown }) => {
      updated.push({ where, values, ctx: options.ctx });
      return 1;
    },
  };
  const write = async (_em: EntityManager, rows: OutboxRow[], ctx: Transaction | undefined) => {
    inserted.push({ rows: [...rows], ctx });
  };
  return { em: em as unknown as EntityManager, inserted, updated, write };
}

const headersOf = (row: OutboxRow) => JSON.parse(row.headers) as OutboxHeaders;
const idsOf = (rows: OutboxRow[]) => rows.map((row) => row.id);

describe('OutboxSubscriber', () => {
  let pending: PendingMessages;
  let commits: {
    flushed: jest.Mock<(em: EntityManager, rows: FlushedRows) => void>;
    listening: boolean;
  };
  let subscriber: OutboxSubscriber;
  let tracker: CommitTracker;
  let unit: ReturnType<typeof fakeUnit>;
  let db: ReturnType<typeof fakeEm>;

  beforeEach(() => {
    pending = new PendingMessages();
    commits = { flushed: jest.fn(), listening: false };
    tracker = {
      flushed: commits.flushed,
      wantsEvents: () => commits.listening,
      wantsTypes: () => commits.listening,
    } as unknown as CommitTracker;
    unit = fakeUnit();
    db = fakeEm();
    subscriber = new OutboxSubscriber(
      new OutboxRowFactory(64 * 1024, new OutboxTracing()),
      pending,
      tracker,
      (em, rows, ctx) => db.write(em, rows, ctx),
    );
  });

  const args = (): FlushEventArgs => ({ uow: unit.uow, em: db.em }) as FlushEventArgs;
  const onFlush = () => subscriber.onFlush(args());
  const afterFlush = () => subscriber.afterFlush(args());

  /** Rows a flush wrote: as change sets (a flush of outbox rows alone) or by its own INSERT. */
  const writtenRows = () => [...unit.computed, ...db.inserted.flatMap((insert) => insert.rows)];

  it('writes one row per event of the aggregates in the change sets and in the identity map, one correlation id per aggregate', async () => {
    const changed = new Order('o1');
    changed.apply(new OrderPlaced('o1'));
    changed.apply(new OrderPaid(12));
    // Only applied an event: no change set, found through the identity map.
    const untouched = new Order('o2');
    untouched.apply(new OrderPlaced('o2'));
    unit.changed.push(changed, new Customer());
    unit.identityMap.push(changed, new Customer(), new Order('o3'), untouched);
    onFlush();
    // With other writes in the flush, its rows wait for one INSERT at its end, not change sets.
    expect(unit.computed).toEqual([]);
    await afterFlush();

    const rows = writtenRows();
    expect(rows.map((row) => [row.type, row.aggregateType, row.aggregateId, row.key, row.payload])).toEqual([
      ['spec.capture.order-placed.v1', 'Order', 'o1', 'Order:o1', '{"orderId":"o1"}'],
      ['spec.capture.order-paid.v1', 'Order', 'o1', 'Order:o1', '{"amount":12}'],
      ['spec.capture.order-placed.v1', 'Order', 'o2', 'Order:o2', '{"orderId":"o2"}'],
    ]);
    expect(new Set(idsOf(rows)).size).toBe(3);
    expect(rows.map((row) => headersOf(row).correlationId)).toEqual([rows[0].id, rows[0].id, rows[2].id]);
    expect(rows.every((row) => headersOf(row).messageId === row.id)).toBe(true);
  });

  it('writes an aggregate that is both changed and in the identity map once', async () => {
    const order = new Order('o1');
    order.apply(new OrderPlaced('o1'));
    unit.changed.push(order, order);
    unit.identityMap.push(order);
    onFlush();
    await afterFlush();

    expect(writtenRows()).toHaveLength(1);
  });

  it('leaves the events on the aggregate until the flush succeeded, then forgets them', async () => {
    const order = new Order('o1');
    order.apply(new OrderPlaced('o1'));
    unit.identityMap.push(order);
    onFlush();

    expect(order.getUncommittedEvents()).toHaveLength(1);
    await afterFlush();
    expect(order.getUncommittedEvents()).toEqual([]);

    // A later event belongs to the next flush only.
    const later = new OrderPaid(3);
    order.apply(later);
    onFlush();
    expect(unit.computed.map((row) => row.type)).toEqual([
      'spec.capture.order-placed.v1',
      'spec.capture.order-paid.v1',
    ]);
    await afterFlush();
    expect(order.getUncommittedEvents()).toEqual([]);
  });

  it('keeps the events when the flush fails (no afterFlush), and writes each once in the retry, under the same id', async () => {
    const first = new Order('o1');
    const second = new Order('o2');
    const dropped = new Order('o3');
    const shared = new OrderPlaced('both'); // one event object applied to two aggregates: two rows
    first.apply(new OrderPlaced('o1'));
    first.apply(shared);
    second.apply(shared);
    dropped.apply(new OrderPaid(1));
    unit.identityMap.push(first, second, dropped);
    onFlush();
    const failed = [...unit.computed];
    const failedId = (aggregateId: string, payload: string) =>
      failed.find((row) => row.aggregateId === aggregateId && row.payload === payload)?.id;
    expect(first.getUncommittedEvents()).toHaveLength(2);

    // The flush failed. The application drops one aggregate's event, applies one more on another,
    // and flushes again; MikroORM may now list the aggregates in another order.
    dropped.uncommit();
    first.apply(new OrderPaid(5));
    second.apply(new OrderPaid(6));
    unit.identityMap.reverse();
    unit.computed.length = 0;
    onFlush();
    const retried = unit.computed;
    const row = (aggregateId: string, payload: string) =>
      retried.find((candidate) => candidate.aggregateId === aggregateId && candidate.payload === payload)!;

    expect(retried).toHaveLength(5);
    expect(row('o1', '{"orderId":"o1"}').id).toBe(failedId('o1', '{"orderId":"o1"}'));
    expect(row('o1', '{"orderId":"both"}').id).toBe(failedId('o1', '{"orderId":"both"}'));
    expect(row('o2', '{"orderId":"both"}').id).toBe(failedId('o2', '{"orderId":"both"}'));
    expect(failed.map((failedRow) => failedRow.id)).not.toContain(row('o1', '{"amount":5}').id);
    // A new event joins its own aggregate's correlation.
    expect(headersOf(row('o1', '{"amount":5}')).correlationId).toBe(failedId('o1', '{"orderId":"o1"}'));
    expect(headersOf(row('o2', '{"amount":6}')).correlationId).toBe(failedId('o2', '{"orderId":"both"}'));
    // Fresh rows with the same values; every failed row leaves MikroORM's identity map, the dropped one too.
    expect(retried.some((candidate) => failed.includes(candidate))).toBe(false);
    expect(row('o1', '{"orderId":"o1"}')).toEqual(failed[0]);
    expect(unit.unset).toEqual(expect.arrayContaining(failed));

    await afterFlush();
    expect(first.getUncommittedEvents()).toEqual([]);
    expect(second.getUncommittedEvents()).toEqual([]);

    // Succeeded: the failed flush's ids are not reused again, even for the same event object.
    first.apply(shared);
    unit.computed.length = 0;
    onFlush();
    expect(failed.map((failedRow) => failedRow.id)).not.toContain(unit.computed[0].id);
  });

  it('keeps the events when an event cannot be serialised, and refuses the flush', () => {
    const order = new Order('o1');
    order.apply(new OrderPlaced('o1'));
    order.apply(Object.assign(new OrderPaid(1), { big: 1n }));
    unit.identityMap.push(order);

    expect(() => onFlush()).toThrow(OutboxPayloadError);
    expect(order.getUncommittedEvents()).toHaveLength(2);
  });

  it('writes messages from publish() with the flush, drops them only once it succeeded, and keeps their ids in a retry', async () => {
    const row = new OutboxRowFactory(64 * 1024, new OutboxTracing()).create(new OrderPaid(7), {
      aggregateType: null,
      aggregateId: null,
    });
    pending.add(unit.uow, { row, event: new OrderPaid(7) });
    onFlush();
    expect(unit.computed.map((entity) => entity.id)).toEqual([row.id]);

    // Failed; the retry writes a fresh entity with the same id.
    onFlush();
    expect(unit.computed).toHaveLength(2);
    expect(unit.computed[1]).not.toBe(unit.computed[0]);
    expect(unit.computed[1].id).toBe(row.id);
    expect(pending.of(unit.uow)).toHaveLength(1);

    await afterFlush();
    expect(pending.of(unit.uow)).toBeUndefined();
  });

  it('takes the rows it wrote out of the identity map and tells the commit tracker, with the events when someone listens', async () => {
    const order = new Order('o1');
    const placed = new OrderPlaced('o1');
    order.apply(placed);
    unit.identityMap.push(order);
    commits.listening = true;
    onFlush();
    await afterFlush();

    expect(unit.unset).toEqual(unit.computed);
    expect(commits.flushed).toHaveBeenCalledTimes(1);
    expect(commits.flushed).toHaveBeenCalledWith(db.em, {
      events: [placed],
      types: ['spec.capture.order-placed.v1'],
      leased: [],
      wakesRelay: true,
    });

    commits.listening = false;
    order.apply(new OrderPaid(1));
    onFlush();
    await afterFlush();
    expect(commits.flushed).toHaveBeenLastCalledWith(db.em, {
      events: undefined,
      types: undefined,
      leased: [],
      wakesRelay: true,
    });
  });

  it('with relay.dispatchOnCommit, writes the rows its lease takes leased and tells the tracker which; the others wake a relay', async () => {
    const factory = new OutboxRowFactory(64 * 1024, new OutboxTracing());
    const lease = { relayId: 'api:1', leaseMs: 30_000, takes: (row: OutboxRow) => row.availableAt === null };
    subscriber = new OutboxSubscriber(factory, pending, tracker, db.write, undefined, lease);
    const order = new Order('o1');
    order.apply(new OrderPlaced('o1'));
    unit.identityMap.push(order);
    onFlush();
    await afterFlush();
    const [entity] = unit.computed;
    expect(entity).toMatchObject({ claimedBy: 'api:1', attempts: 1 });
    expect(entity.lockedUntil!.getTime()).toBeGreaterThan(Date.now() + 25_000);
    expect(commits.flushed).toHaveBeenLastCalledWith(
      db.em,
      expect.objectContaining({
        leased: [expect.objectContaining({ id: entity.id, leased: true })],
        wakesRelay: false,
      }),
    );

    const delayed = factory.create(new OrderPaid(7), { aggregateType: null, aggregateId: null }, { delay: 1000 });
    pending.add(unit.uow, { row: delayed, event: new OrderPaid(7) });
    onFlush();
    await afterFlush();
    expect(unit.computed[1]).toMatchObject({ id: delayed.id, claimedBy: null, attempts: 0, lockedUntil: null });
    expect(commits.flushed).toHaveBeenLastCalledWith(db.em, expect.objectContaining({ leased: [], wakesRelay: true }));
  });

  it("with relay.dispatchOnCommit, leases rows in the caller's transaction only when its COMMIT's answer will be seen", async () => {
    const factory = new OutboxRowFactory(64 * 1024, new OutboxTracing());
    const lease = { relayId: 'api:1', leaseMs: 30_000, takes: () => true };
    const outer = { name: 'caller' } as unknown as Transaction;
    db = fakeEm(outer);
    const leases: unknown[] = [];
    let outcome: CommitOutcome | undefined = { committed: undefined };
    const watched: unknown[] = [];
    const messages = {
      rowsAtCommit: () => false,
      beginExpected: () => false,
      claimBegin: async () => undefined,
      watchCommit: async (transaction: Transaction) => {
        watched.push(transaction);
        return outcome;
      },
    };
    // As the INSERT does: a row is leased when a lease is given and takes it.
    const write = async (
      em: EntityManager,
      rows: OutboxRow[],
      ctx: Transaction | undefined,
      _: boolean,
      at?: Lease,
    ) => {
      leases.push(at);
      for (const row of rows) row.leased = at?.takes(row) ?? false;
      await db.write(em, rows, ctx);
    };
    subscriber = new OutboxSubscriber(factory, pending, tracker, write, messages, lease);
    // Events and nothing else: in the caller's transaction, written by the flush's INSERT, not as change sets.
    const order = new Order('o1');
    order.apply(new OrderPlaced('o1'));
    unit.identityMap.push(order);
    onFlush();
    await afterFlush();
    expect(unit.computed).toEqual([]);
    expect(watched).toEqual([outer]);
    expect(leases).toEqual([lease]);
    expect(commits.flushed).toHaveBeenLastCalledWith(
      db.em,
      expect.objectContaining({ leased: [expect.objectContaining({ leased: true })], wakesRelay: false, outcome }),
    );

    // The pool is not hooked: the answer cannot be seen, so the rows are left to a relay's claim.
    outcome = undefined;
    order.apply(new OrderPaid(3));
    onFlush();
    await afterFlush();
    expect(leases).toEqual([lease, undefined]);
    expect(commits.flushed).toHaveBeenLastCalledWith(
      db.em,
      expect.objectContaining({ leased: [], wakesRelay: true, outcome: undefined }),
    );
  });

  it('does not tell the commit tracker of a flush without outbox rows, but does when the application persisted one itself', async () => {
    unit.changed.push(new Customer());
    onFlush();
    await afterFlush();
    expect(commits.flushed).not.toHaveBeenCalled();

    unit.changed.push(new OutboxMessage());
    onFlush();
    await afterFlush();
    expect(commits.flushed).toHaveBeenCalledTimes(1);
  });

  describe('during the flush', () => {
    const tx = { name: 'flush transaction' } as unknown as Transaction;
    const txArgs = () => ({ uow: unit.uow, em: db.em, transaction: tx }) as unknown as TransactionEventArgs;

    it('inserts events a hook applied in the transaction the flush opened, before it commits, and forgets them after', async () => {
      const order = new Order('o1');
      order.apply(new OrderPlaced('o1'));
      unit.changed.push(order);
      onFlush();
      subscriber.afterTransactionStart(txArgs());
      order.apply(new OrderPaid(9)); // e.g. in @BeforeUpdate
      await subscriber.beforeTransactionCommit(txArgs());

      // One INSERT, in the flush's transaction before it commits: the flush's row and the hook's.
      expect(db.inserted).toHaveLength(1);
      expect(db.inserted[0].ctx).toBe(tx);
      expect(db.inserted[0].rows.map((row) => row.type)).toEqual([
        'spec.capture.order-placed.v1',
        'spec.capture.order-paid.v1',
      ]);

      await afterFlush();
      expect(db.inserted).toHaveLength(1);
      expect(order.getUncommittedEvents()).toEqual([]);
      // Inserted as plain rows, never entities: nothing of theirs joined the identity map.
      expect(unit.unset).toEqual([]);
    });

    it('inserts them in the transaction of the caller when the flush runs inside one', async () => {
      const outer = { name: 'caller transaction' } as unknown as Transaction;
      db = fakeEm(outer);
      const order = new Order('o1');
      unit.changed.push(order);
      onFlush();
      order.apply(new OrderPlaced('o1')); // e.g. in @BeforeCreate
      await afterFlush();

      expect(db.inserted.map((insert) => [insert.ctx, insert.rows.length])).toEqual([[outer, 1]]);
      expect(order.getUncommittedEvents()).toEqual([]);
      expect(commits.flushed).toHaveBeenCalledTimes(1);
    });

    it('gives the rows of an aggregate whose id the database generated that id and key, in the same transaction', async () => {
      const order = new Order(undefined);
      order.apply(new OrderPlaced('new'));
      order.apply(new OrderPaid(1));
      unit.changed.push(order);
      onFlush();

      subscriber.afterTransactionStart(txArgs());
      order.id = '42'; // the INSERT of the order returned it
      await subscriber.beforeTransactionCommit(txArgs());

      // The rows were not written yet: they are written with the id, and no UPDATE is needed.
      const rows = writtenRows();
      expect(db.inserted.map((insert) => insert.ctx)).toEqual([tx]);
      expect(rows.map((row) => [row.aggregateType, row.aggregateId, row.key])).toEqual([
        ['Order', '42', 'Order:42'],
        ['Order', '42', 'Order:42'],
      ]);
      expect(db.updated).toEqual([]);
      await afterFlush();
      expect(db.updated).toEqual([]);
    });

    it('updates rows already written as change sets (a flush of outbox rows alone) once their aggregate has an id', async () => {
      const order = new Order(undefined);
      order.apply(new OrderPlaced('new'));
      // Only the identity map: the flush writes nothing but outbox rows, as change sets.
      unit.identityMap.push(order);
      onFlush();
      const rows = [...unit.computed];
      expect(rows.map((row) => [row.aggregateId, row.key])).toEqual([[null, null]]);

      subscriber.afterTransactionStart(txArgs());
      order.id = '42';
      await subscriber.beforeTransactionCommit(txArgs());

      expect(db.updated).toEqual([
        { where: { id: { $in: idsOf(rows) } }, values: { aggregateId: '42', key: 'Order:42' }, ctx: tx },
      ]);
    });
  });
});
