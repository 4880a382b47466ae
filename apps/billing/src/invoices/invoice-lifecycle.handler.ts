import { OrderPaid, OrderPlaced } from '@nest-outbox/example-contracts';
import { EntityManager } from '@mikro-orm/postgresql';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { OutboxOrdered } from 'nest-outbox';
import { Invoice } from './invoice.entity.js';

/**
 * Issues an invoice when an order is placed and settles it when the order is paid. Ordered per
 * order (the key of both events), so "paid" is never handled before "placed" — with many
 * workers, retries and crashes. The invoice's own events are written by this handler's
 * transaction into billing's outbox, atomically with the invoice.
 */
@EventsHandler(OrderPlaced, OrderPaid)
@OutboxOrdered()
export class InvoiceLifecycle implements IEventHandler<OrderPlaced | OrderPaid> {
  constructor(private readonly em: EntityManager) {}

  async handle(event: OrderPlaced | OrderPaid): Promise<void> {
    if (event instanceof OrderPlaced) {
      this.em.persist(new Invoice(event.orderId, event.customerId, event.totalCents));
      return;
    }
    const invoice = await this.em.findOneOrFail(Invoice, { orderId: event.orderId });
    invoice.settle();
  }
}
