import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { RequestContext } from '@mikro-orm/core';
import { EntityManager } from '@mikro-orm/postgresql';
import { OutboxService } from 'nest-outbox';
import { CommitSignal } from '../libs/outbox/src/routing/commit.signal.js';
import { Ledger, Meter, PATTERN_ENTITIES, PATTERN_TABLES, Shipment } from './support/cqrs-patterns.js';
import { freshDatabase, withConnection } from './support/database.js';
import {
  Account,
  CAPTURE_FOR_RELAY,
  CAPTURE_ONLY,
  Deposited,
  prepareFixtureDatabase,
  startFixtureApp,
  type FixtureApp,
} from './support/fixture.js';

interface Row {
  id: string;
  type: string;
  payload: Record<string, unknown>;
  aggregate_type: string | null;
  aggregate_id: string | null;
}

/** Every way of raising an event that @nestjs/cqrs users write, without an EventBus: each one is captured. */
describe('capture: every aggregate pattern reaches the outbox', () => {
  let fixture: FixtureApp;
  let url: string;
  const rows = () => fixture.sql('select * from outbox_message order by id') as Promise<Row[]>;
  const summary = async () => (await rows()).map((r) => [r.type, r.aggregate_type, r.aggregate_id, r.payload]);
  const fork = () => fixture.orm.em.fork() as EntityManager;

  beforeAll(async () => {
    url = await freshDatabase('capture_patterns');
    await prepareFixtureDatabase(url);
    await withConnection(url, async (execute) => {
      for (const statement of PATTERN_TABLES) await execute(statement);
    });
    fixture = await startFixtureApp(url, CAPTURE_ONLY, [], [], PATTERN_ENTITIES);
  });

  afterAll(async () => {
    await fixture?.close();
  });

  beforeEach(async () => {
    await fixture.sql('truncate outbox_message, account, shipment, meter, ledger');
  });

  describe('WithAggregateRoot mixin', () => {
    it('a new aggregate built with the mixin is captured', async () => {
      const shipment = new Shipment('s1');
      shipment.send('dhl');
      await fork().persist(shipment).flush();
      expect(await summary()).toEqual([['test.shipment-sent', 'Shipment', 's1', { shipmentId: 's1', carrier: 'dhl' }]]);
      expect(shipment.getUncommittedEvents()).toEqual([]);
    });

    it('one loaded from the database applies events (no "reading \'push\'") and is captured', async () => {
      await fork().persist(new Shipment('s2')).flush();
      const em = fork();
      const loaded = await em.findOneOrFail(Shipment, { id: 's2' });
      expect(() => loaded.send('ups')).not.toThrow();
      await em.flush();
      expect(await summary()).toEqual([['test.shipment-sent', 'Shipment', 's2', { shipmentId: 's2', carrier: 'ups' }]]);
    });
  });

  it('autoCommit = true: events published at apply() are written by the next flush, in order', async () => {
    const meter = new Meter('m1');
    meter.tick();
    meter.tick();
    await fork().persist(meter).flush();
    expect(await summary()).toEqual([
      ['test.meter-ticked', 'Meter', 'm1', { meterId: 'm1', reading: 1 }],
      ['test.meter-ticked', 'Meter', 'm1', { meterId: 'm1', reading: 2 }],
    ]);
    await fork().persist(meter).flush();
    expect(await rows()).toHaveLength(2);
  });

  it('commit() without an EventPublisher keeps the events for the next flush instead of dropping them', async () => {
    const em = fork();
    const account = new Account('c1', 'c1@example.com');
    account.deposit(4);
    account.commit();
    expect(account.getUncommittedEvents()).toEqual([]);
    account.deposit(6);
    await em.persist(account).flush();
    expect((await rows()).map((r) => r.payload.amount)).toEqual([4, 6]);
    account.commit();
    await em.flush();
    expect(await rows()).toHaveLength(2);
  });

  it('history replayed with loadFromHistory(), and events dropped with uncommit(), are not written', async () => {
    const account = new Account('h1', 'h1@example.com');
    account.loadFromHistory([new Deposited('h1', 1, 1), new Deposited('h1', 2, 2)]);
    account.deposit(3);
    account.uncommit();
    await fork().persist(account).flush();
    expect(await rows()).toEqual([]);
    expect(await fixture.sql("select id from account where id = 'h1'")).toHaveLength(1);
  });

  describe('events applied in lifecycle hooks', () => {
    it('are written by the flush that ran the hook (its own transaction), on create and on update', async () => {
      const em = fork();
      const ledger = new Ledger('l1');
      await em.persist(ledger).flush();
      expect(await summary()).toEqual([['test.ledger-opened', 'Ledger', 'l1', { ledgerId: 'l1' }]]);
      expect(ledger.getUncommittedEvents()).toEqual([]);

      ledger.entries = 3;
      await em.flush();
      expect((await summary()).map(([type, , , payload]) => [type, payload])).toEqual([
        ['test.ledger-opened', { ledgerId: 'l1' }],
        ['test.ledger-booked', { ledgerId: 'l1', entries: 3 }],
      ]);
      await em.flush();
      expect(await rows()).toHaveLength(2);
    });

    it('on another aggregate of the flush (one whose events it writes) are written by it too', async () => {
      await fork()
        .persist([new Ledger('l4'), new Account('auditor', 'auditor@example.com')])
        .flush();
      await fixture.sql('truncate outbox_message');
      const em = fork();
      const ledger = await em.findOneOrFail(Ledger, { id: 'l4' });
      const auditor = await em.findOneOrFail(Account, { id: 'auditor' });
      auditor.ping('before the flush');
      Ledger.auditor = auditor;
      try {
        ledger.entries = 1;
        await em.flush();
      } finally {
        Ledger.auditor = undefined;
      }
      // Order holds per aggregate, not across them.
      const written = (await rows()).map((r) => `${r.aggregate_id}: ${r.payload.note ?? r.payload.entries}`);
      expect(written.filter((r) => r.startsWith('auditor'))).toEqual([
        'auditor: before the flush',
        'auditor: ledger l4 booked',
      ]);
      expect(written.filter((r) => r.startsWith('l4'))).toEqual(['l4: 1']);
      expect(auditor.getUncommittedEvents()).toEqual([]);
    });

    it('inside em.transactional, are written in that transaction and roll back with it', async () => {
      await fork().transactional(async (em) => {
        em.persist(new Ledger('l2'));
        await em.flush();
        expect(await em.execute('select type from outbox_message')).toEqual([{ type: 'test.ledger-opened' }]);
      });
      expect(await rows()).toHaveLength(1);

      await expect(
        fork().transactional(async (em) => {
          em.persist(new Ledger('l3'));
          await em.flush();
          throw new Error('rolled back after the flush');
        }),
      ).rejects.toThrow('rolled back');
      expect((await rows()).map((r) => r.aggregate_id)).toEqual(['l2']);
      expect(await fixture.sql("select id from ledger where id = 'l3'")).toEqual([]);
    });
  });

  it('a fork with freshEventManager: true is captured too', async () => {
    const em = fixture.orm.em.fork({ freshEventManager: true }) as EntityManager;
    const account = new Account('f1', 'f1@example.com');
    account.deposit(2);
    await em.persist(account).flush();
    expect(await summary()).toEqual([
      ['test.deposited.v1', 'Account', 'f1', { accountId: 'f1', amount: 2, sequence: 1 }],
    ]);
  });

  describe('one event object applied more than once', () => {
    it('to two aggregates in one flush: two rows, two ids', async () => {
      const shared = new Deposited('shared', 1, 1);
      const a = new Account('d1', 'd1@example.com');
      const b = new Account('d2', 'd2@example.com');
      a.apply(shared);
      b.apply(shared);
      await fork().persist([a, b]).flush();
      const written = await rows();
      expect(written.map((r) => r.aggregate_id).sort()).toEqual(['d1', 'd2']);
      expect(new Set(written.map((r) => r.id)).size).toBe(2);
    });

    it('again after it was written: a second row with its own id', async () => {
      const em = fork();
      const again = new Deposited('again', 1, 1);
      const account = new Account('d3', 'd3@example.com');
      account.apply(again);
      await em.persist(account).flush();
      account.apply(again);
      await em.flush();
      const written = await rows();
      expect(written).toHaveLength(2);
      expect(written[0].id).not.toBe(written[1].id);
    });
  });

  it('publish(): a flush that failed after inserting the row does not lose it; the next flush writes it once', async () => {
    await fork()
      .persist([new Account('p1', 'p1@example.com'), new Account('p2', 'taken@example.com')])
      .flush();
    const outbox = fixture.app.get(OutboxService);
    // As in an HTTP request: the global EntityManager resolves to the request's own fork.
    const em = fixture.orm.em;
    await RequestContext.create(em, async () => {
      const account = await em.findOneOrFail(Account, { id: 'p1' });
      const id = outbox.publish(new Deposited('p1', 5, 1));
      // Inserts run before updates: the row's INSERT succeeds, then this UPDATE breaks the unique email.
      account.email = 'taken@example.com';
      await expect(em.flush()).rejects.toThrow(/unique|duplicate/i);
      expect(await rows()).toEqual([]);

      account.email = 'p1-new@example.com';
      await em.flush();
      expect((await rows()).map((r) => r.id)).toEqual([id]);
      await em.flush();
      expect(await rows()).toHaveLength(1);
    });
  });

  describe('the relay wake-up belongs to the transaction that wrote the rows (relay.dispatchOnCommit: false)', () => {
    let waking: FixtureApp;
    let heard: string[];
    let stop: () => void;
    // Sending on commit (the default) leaves a commit nothing to wake a relay for.
    const fork = () => waking.orm.em.fork() as EntityManager;
    beforeAll(async () => {
      waking = await startFixtureApp(url, CAPTURE_FOR_RELAY, [], [], PATTERN_ENTITIES);
    });
    afterAll(async () => {
      await waking?.close();
    });
    beforeEach(() => {
      heard = [];
      stop = waking.app.get(CommitSignal).listen(() => heard.push('wake'));
    });
    afterEach(() => stop());

    it('another commit in between neither takes it nor sends it early', async () => {
      const first = fork();
      await first.begin();
      const account = new Account('w1', 'w1@example.com');
      account.deposit(1);
      await first.persist(account).flush();
      await fork().transactional(async (em) => {
        em.persist(new Account('w2', 'w2@example.com'));
      });
      heard.push('other committed');
      await first.commit();
      heard.push('first committed');
      expect(heard).toEqual(['other committed', 'wake', 'first committed']);
    });

    it('rows written in a nested transaction wake once the outer one commits; a rolled-back one does not', async () => {
      await fork().transactional(async (em) => {
        await em.transactional(async (inner) => {
          const account = new Account('w3', 'w3@example.com');
          account.deposit(1);
          inner.persist(account);
        });
        heard.push('inner released');
      });
      heard.push('outer committed');
      expect(heard).toEqual(['inner released', 'wake', 'outer committed']);

      heard.length = 0;
      await fork().transactional(async (em) => {
        await em
          .transactional(async (inner) => {
            const account = new Account('w4', 'w4@example.com');
            account.deposit(1);
            inner.persist(account);
            await inner.flush();
            throw new Error('inner rolls back');
          })
          .catch(() => undefined);
      });
      expect(heard).toEqual([]);
      expect((await rows()).map((r) => r.aggregate_id)).toEqual(['w3']);
    });
  });
});
