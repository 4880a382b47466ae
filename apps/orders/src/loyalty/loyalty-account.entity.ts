import { Entity, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { AggregateRoot } from '@nestjs/cqrs';
import { LoyaltyPointsAwarded } from './loyalty.events.js';

/** A second aggregate, changed by a handler; its own event is chained through the outbox. */
@Entity({ tableName: 'loyalty_account' })
export class LoyaltyAccount extends AggregateRoot {
  @PrimaryKey({ type: 'text' })
  customerId!: string;

  @Property({ type: 'integer' })
  points!: number;

  award(orderId: string, totalCents: number): void {
    const points = Math.floor(totalCents / 100);
    this.points += points;
    this.apply(new LoyaltyPointsAwarded(this.customerId, orderId, points, this.points));
  }
}
