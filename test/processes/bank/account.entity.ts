import { Entity, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { AggregateRoot } from '@nestjs/cqrs';
import { Deposited, Withdrawn } from './bank.events.js';

/** The producer's aggregate: every operation changes the balance and raises its event. */
@Entity({ tableName: 'bank_account' })
export class Account extends AggregateRoot {
  @PrimaryKey({ type: 'text' })
  id: string;

  @Property({ type: 'integer' })
  balance = 0;

  @Property({ type: 'integer' })
  operations = 0;

  constructor(id: string) {
    super();
    this.id = id;
  }

  deposit(amount: number): void {
    this.balance += amount;
    this.apply(new Deposited(this.id, amount, ++this.operations));
  }

  withdraw(amount: number): void {
    this.balance -= amount;
    this.apply(new Withdrawn(this.id, amount, ++this.operations));
  }
}
