import { randomUUID } from 'node:crypto';
import { Entity, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { AggregateRoot } from '@nestjs/cqrs';
import { OrderPaid, OrderPlaced } from '@nest-outbox/example-contracts';

export enum OrderStatus {
  Placed = 'placed',
  Paid = 'paid',
}

export class OrderNotPayableError extends Error {}

@Entity({ tableName: 'orders' })
export class Order extends AggregateRoot {
  @PrimaryKey({ type: 'uuid' })
  id: string;

  @Property({ type: 'text' })
  customerId: string;

  @Property({ type: 'integer' })
  totalCents: number;

  @Property({ type: 'text' })
  status: OrderStatus;

  @Property({ type: 'datetime', columnType: 'timestamptz' })
  placedAt: Date;

  @Property({ type: 'datetime', columnType: 'timestamptz', nullable: true })
  paidAt: Date | null = null;

  constructor(customerId: string, totalCents: number) {
    super();
    this.id = randomUUID();
    this.customerId = customerId;
    this.totalCents = totalCents;
    this.status = OrderStatus.Placed;
    this.placedAt = new Date();
    this.apply(new OrderPlaced(this.id, customerId, totalCents));
  }

  pay(): void {
    if (this.status !== OrderStatus.Placed) {
      throw new OrderNotPayableError(`Order ${this.id} is ${this.status}; only a placed order can be paid.`);
    }
    this.status = OrderStatus.Paid;
    this.paidAt = new Date();
    this.apply(new OrderPaid(this.id, this.customerId, this.totalCents));
  }
}
