import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Entity, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { EntityManager } from '@mikro-orm/postgresql';
import { AggregateRoot } from '@nestjs/cqrs';
import { OutboxPayloadError, OutboxService } from 'nest-outbox';
import { freshDatabase } from './support/database.js';
import {
  Account,
  CAPTURE_ONLY,
  Deposited,
  prepareFixtureDatabase,
  startFixtureApp,
  type FixtureApp,
} from './support/fixture.js';

class TicketOpened {
  constructor(readonly subject: string) {}
}

/** An aggregate whose id the database generates at INSERT: unknown when its events become rows. */
@Entity({ tableName: 'ticket' })
class Ticket extends AggregateRoot {
  @PrimaryKey({ type: 'integer', autoincrement: true })
  id!: number;

  @Property({ type: 'text' })
  subject: string;

  constructor(subject: string) {
    super();
    this.subject = subject;
    this.apply(new TicketOpened(subject));
  }
}

interface Row {
  id: string;
  type: string;
  payload: Record<string, unknown>;
  headers: Record<string, any>;
  aggregate_type: string | null;
  aggregate_id: string | null;
  key: string | null;
  available_at: Date | null;
}

describe('capture: events become outbox rows in the flush transaction', () => {
  let fixture: FixtureApp;
  const rows = () => fixture.sql('select * from outbox_message order by id') as Promise<Row[]>;
  const accounts = () => fixture.sql('select * from account order by id');
  const fork = () => fixture.orm.em.fork() as EntityManager;

  beforeAll(async () => {
    const url = await freshDatabase('capture');
    await prepareFixtureDatabase(url);
    fixture = await startFixtureApp(url, CAPTURE_ONLY, undefined, undefined, [Ticket]);
    await fixture.sql('create table ticket (id serial primary key, subject text not null)');
  });

  afterAll(async () => {
    await fixture?.close();
  });

  beforeEach(async () => {
    await fixture.sql('truncate outbox_message, account, ticket');
  });

  it('a commit writes the state and one row per event, with type, payload and aggregate', async () => {
    const em = fork();
    const account = new Account('a1', 'a1@example.com');
    account.deposit(10);
    account.deposit(5);
    await em.persist(account).flush();

    expect(await accounts()).toEqual([expect.objectContaining({ id: 'a1', balance: 15 })]);
    const written = await rows();
    expect(written.map((r) => [r.type, r.payload, r.aggregate_type, r.aggregate_id, r.key])).toEqual([
      ['test.deposited.v1', { accountId: 'a1', amount: 10, sequence: 1 }, 'Account', 'a1', 'Account:a1'],
      ['test.deposited.v1', { accountId: 'a1', amount: 5, sequence: 2 }, 'Account', 'a1', 'Account:a1'],
    ]);
    expect(written[0].headers).toEqual({
      messageId: written[0].id,
      correlationId: written[0].id,
      occurredAt: expect.any(String),
    });
    expect(written[1].headers.correlationId).toBe(written[0].id);
    expect(account.getUncommittedEvents()).toEqual([]);

    await em.flush();
    expect(await rows()).toHaveLength(2);
  });

  it('an error inside em.transactional leaves neither state nor rows', async () => {
    await expect(
      fork().transactional(async (em) => {
        const account = new Account('a2', 'a2@example.com');
        account.deposit(1);
        em.persist(account);
        await em.flush();
        throw new Error('business rule broke after the flush');
      }),
    ).rejects.toThrow('business rule broke');
    expect(await accounts()).toEqual([]);
    expect(await rows()).toEqual([]);
  });

  it('a failing flush (unique violation) writes nothing; the retried flush writes each event once', async () => {
    await fork().persist(new Account('taken', 'dup@example.com')).flush();
    const em = fork();
    const account = new Account('a3', 'dup@example.com');
    account.deposit(7);
    account.deposit(8);
    em.persist(account);
    await expect(em.flush()).rejects.toThrow(/unique|duplicate/i);
    expect(await rows()).toEqual([]);
    expect(await accounts()).toHaveLength(1);

    account.email = 'a3@example.com';
    em.persist(account);
    await em.flush();
    expect((await rows()).map((r) => r.payload.sequence)).toEqual([1, 2]);
    expect(await accounts()).toHaveLength(2);
  });

  it('an aggregate loaded from the database applies and captures events', async () => {
    await fork().persist(new Account('a4', 'a4@example.com')).flush();
    const em = fork();
    const loaded = await em.findOneOrFail(Account, { id: 'a4' });
    loaded.deposit(3);
    await em.flush();
    expect((await rows()).map((r) => r.payload)).toEqual([{ accountId: 'a4', amount: 3, sequence: 1 }]);
    expect(loaded.getUncommittedEvents()).toEqual([]);
  });

  it('an aggregate that only applied events (no field changed) is captured', async () => {
    await fork().persist(new Account('a5', 'a5@example.com')).flush();
    const em = fork();
    const loaded = await em.findOneOrFail(Account, { id: 'a5' });
    loaded.ping('hello');
    await em.flush();
    expect((await rows()).map((r) => [r.type, r.payload])).toEqual([['Pinged', { accountId: 'a5', note: 'hello' }]]);
  });

  it('several aggregates and events in one flush keep per-aggregate order in the rows', async () => {
    const em = fork();
    const all = ['x', 'y', 'z'].map((id) => new Account(id, `${id}@example.com`));
    for (let round = 0; round < 5; round++) for (const account of all) account.deposit(round + 1);
    em.persist(all);
    await em.flush();
    const written = await rows();
    expect(written).toHaveLength(15);
    for (const id of ['x', 'y', 'z']) {
      expect(written.filter((r) => r.aggregate_id === id).map((r) => r.payload.sequence)).toEqual([1, 2, 3, 4, 5]);
    }
  });

  it('a flush with more events than one INSERT can carry (65,535 parameters) writes them all, in order, or none', async () => {
    const em = fork();
    const account = new Account('bulk', 'bulk@example.com');
    for (let i = 0; i < 8000; i++) account.deposit(1);
    await em.persist(account).flush();
    const written = (await fixture.sql(
      `select (payload->>'sequence')::int as sequence from outbox_message order by seq`,
    )) as Array<{ sequence: number }>;
    expect(written).toHaveLength(8000);
    expect(written.every((row, i) => row.sequence === i + 1)).toBe(true);

    // The second INSERT of a flush fails: the first one's rows roll back with it.
    await fixture.sql('truncate outbox_message');
    await fixture.sql(
      `alter table outbox_message add constraint no_15999 check ((payload->>'sequence')::int <> 15999)`,
    );
    try {
      const again = fork();
      const loaded = await again.findOneOrFail(Account, { id: 'bulk' });
      for (let i = 0; i < 8000; i++) loaded.deposit(1);
      await expect(again.flush()).rejects.toThrow(/no_15999/);
      expect(await rows()).toEqual([]);
      expect((await accounts())[0]).toEqual(expect.objectContaining({ balance: 8000 }));
    } finally {
      await fixture.sql('alter table outbox_message drop constraint no_15999');
    }
  });

  it('publish() writes a message without an aggregate at the next flush, with delay, key and headers', async () => {
    const outbox = fixture.app.get(OutboxService);
    const em = fork();
    let id = '';
    await em.transactional(async () => {
      id = outbox.publish(new Deposited('none', 1, 1), { delay: 60_000, key: 'tenant-7', headers: { source: 'test' } });
    });
    const [row] = await rows();
    expect(row.id).toBe(id);
    expect(row.aggregate_type).toBeNull();
    expect(row.aggregate_id).toBeNull();
    expect(row.key).toBe('tenant-7');
    expect(row.headers.custom).toEqual({ source: 'test' });
    expect(new Date(row.available_at!).getTime()).toBeGreaterThan(Date.now() + 50_000);
  });

  it('an event that cannot be serialised fails the whole flush with a clear error and writes nothing', async () => {
    const em = fork();
    const account = new Account('a6', 'a6@example.com');
    account.apply(Object.assign(new Deposited('a6', 1, 1), { big: 10n }));
    em.persist(account);
    await expect(em.flush()).rejects.toThrow(OutboxPayloadError);
    await expect(em.flush()).rejects.toThrow(/Deposited|test\.deposited\.v1.*cannot be serialised.*BigInt/i);
    expect(await accounts()).toEqual([]);
    expect(await rows()).toEqual([]);
  });

  it('a payload with a forbidden key at any depth fails the flush, naming the path; nothing is written', async () => {
    const em = fork();
    const account = new Account('k1', 'k1@example.com');
    account.apply(Object.assign(new Deposited('k1', 1, 1), { items: [{}, {}, { constructor: 'x' }] }));
    em.persist(account);
    await expect(em.flush()).rejects.toThrow(OutboxPayloadError);
    await expect(em.flush()).rejects.toThrow(/field named "constructor" \(at payload\.items\[2\]\.constructor\)/);
    expect(await fixture.sql('select id from account')).toEqual([]);
    expect(await rows()).toEqual([]);

    const outbox = fixture.app.get(OutboxService);
    await fork().transactional(async () => {
      expect(() => outbox.publish(Object.assign(new Deposited('k2', 1, 1), { meta: { prototype: 1 } }))).toThrow(
        /field named "prototype" \(at payload\.meta\.prototype\)/,
      );
    });
    expect(await rows()).toEqual([]);
  });

  it('publish() rejects a header that is not a string, before anything is written', async () => {
    const outbox = fixture.app.get(OutboxService);
    await fork().transactional(async () => {
      expect(() => outbox.publish(new Deposited('h', 1, 1), { headers: { retries: 3 as unknown as string } })).toThrow(
        /Header "retries".*must be a string/,
      );
      expect(() => outbox.publish(new Deposited('h', 1, 1), JSON.parse('{"headers": {"__proto__": "x"}}'))).toThrow(
        /Header name "__proto__".*not allowed/,
      );
    });
    expect(await rows()).toEqual([]);
  });

  it('an aggregate whose id the database generates gets that id and its ordering key in its rows, in the same transaction', async () => {
    const em = fork();
    const first = new Ticket('printer on fire');
    const second = new Ticket('coffee machine empty');
    await em.persist([first, second]).flush();

    expect(typeof first.id).toBe('number');
    const written = (await rows()).map((row) => [row.type, row.aggregate_type, row.aggregate_id, row.key]);
    expect(written).toEqual([
      ['TicketOpened', 'Ticket', String(first.id), `Ticket:${first.id}`],
      ['TicketOpened', 'Ticket', String(second.id), `Ticket:${second.id}`],
    ]);
  });

  it('publish() outside any EntityManager context says where to call it', () => {
    const outbox = fixture.app.get(OutboxService);
    expect(() => outbox.publish(new Deposited('h', 1, 1))).toThrow(
      /needs an EntityManager context.*em\.transactional\(\)/,
    );
  });
});
