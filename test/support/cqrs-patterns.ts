import { AfterUpdate, BeforeCreate, Entity, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { AggregateRoot, WithAggregateRoot } from '@nestjs/cqrs';
import { OutboxEvent } from 'nest-outbox';

/** Aggregates written the ways the @nestjs/cqrs docs show, beyond the fixture's plain `Account`. */

@OutboxEvent('test.shipment-sent')
export class ShipmentSent {
  constructor(
    readonly shipmentId: string,
    readonly carrier: string,
  ) {}
}

/** A base class the application already had: the mixin turns its subclasses into aggregates. */
export class Described {
  describe(): string {
    return this.constructor.name;
  }
}

@Entity({ tableName: 'shipment' })
export class Shipment extends WithAggregateRoot(Described) {
  @PrimaryKey({ type: 'text' })
  id: string;

  @Property({ type: 'text' })
  status = 'new';

  constructor(id: string) {
    super();
    this.id = id;
  }

  send(carrier: string): void {
    this.status = 'sent';
    this.apply(new ShipmentSent(this.id, carrier));
  }
}

@OutboxEvent('test.meter-ticked')
export class MeterTicked {
  constructor(
    readonly meterId: string,
    readonly reading: number,
  ) {}
}

/** `autoCommit`: cqrs publishes each applied event at once and keeps none uncommitted. */
@Entity({ tableName: 'meter' })
export class Meter extends AggregateRoot {
  @PrimaryKey({ type: 'text' })
  id: string;

  @Property({ type: 'integer' })
  reading = 0;

  constructor(id: string) {
    super();
    this.id = id;
    this.autoCommit = true;
  }

  tick(): void {
    this.reading++;
    this.apply(new MeterTicked(this.id, this.reading));
  }
}

@OutboxEvent('test.ledger-opened')
export class LedgerOpened {
  constructor(readonly ledgerId: string) {}
}

@OutboxEvent('test.ledger-booked')
export class LedgerBooked {
  constructor(
    readonly ledgerId: string,
    readonly entries: number,
  ) {}
}

/** Raises events from MikroORM lifecycle hooks, which run while the flush writes. */
@Entity({ tableName: 'ledger' })
export class Ledger extends AggregateRoot {
  /** Another aggregate the update hook also raises an event on, when a test sets one. */
  static auditor: { ping(note: string): void } | undefined;

  @PrimaryKey({ type: 'text' })
  id: string;

  @Property({ type: 'integer' })
  entries = 0;

  constructor(id: string) {
    super();
    this.id = id;
  }

  @BeforeCreate()
  opened(): void {
    this.apply(new LedgerOpened(this.id));
  }

  @AfterUpdate()
  booked(): void {
    this.apply(new LedgerBooked(this.id, this.entries));
    Ledger.auditor?.ping(`ledger ${this.id} booked`);
  }
}

export const PATTERN_ENTITIES = [Shipment, Meter, Ledger];

export const PATTERN_TABLES = [
  'create table shipment (id text primary key, status text not null)',
  'create table meter (id text primary key, reading int not null)',
  'create table ledger (id text primary key, entries int not null)',
];
