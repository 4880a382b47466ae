import { randomUUID } from 'node:crypto';
import { Entity, PrimaryKey, Property } from '@mikro-orm/decorators/legacy';
import { AggregateRoot } from '@nestjs/cqrs';
import { InvoiceIssued, InvoiceSettled } from '@nest-outbox/example-contracts';

export enum InvoiceStatus {
  Issued = 'issued',
  Settled = 'settled',
}

export class InvoiceNotSettleableError extends Error {}

/** Billing's aggregate: one invoice per order; its events go back to orders through billing's own outbox. */
@Entity({ tableName: 'invoice' })
export class Invoice extends AggregateRoot {
  @PrimaryKey({ type: 'uuid' })
  id: string;

  @Property({ type: 'uuid', unique: true })
  orderId: string;

  @Property({ type: 'text' })
  customerId: string;

  @Property({ type: 'integer' })
  amountCents: number;

  @Property({ type: 'text' })
  status: InvoiceStatus;

  constructor(orderId: string, customerId: string, amountCents: number) {
    super();
    this.id = randomUUID();
    this.orderId = orderId;
    this.customerId = customerId;
    this.amountCents = amountCents;
    this.status = InvoiceStatus.Issued;
    this.apply(new InvoiceIssued(this.id, orderId, amountCents));
  }

  settle(): void {
    if (this.status !== InvoiceStatus.Issued) {
      throw new InvoiceNotSettleableError(
        `Invoice ${this.id} is ${this.status}; only an issued invoice can be settled.`,
      );
    }
    this.status = InvoiceStatus.Settled;
    this.apply(new InvoiceSettled(this.id, this.orderId));
  }
}
