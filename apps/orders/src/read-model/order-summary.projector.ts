import { EntityManager } from '@mikro-orm/postgresql';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { OrderPaid, OrderPlaced } from '../orders/order.events.js';
import { OrderSummary } from './order-summary.entity.js';

/**
 * Maintains the read model in the handler's own transaction (with its inbox mark). Delivery order
 * across messages is not guaranteed, so OrderPaid may arrive first and OrderPlaced must not undo it.
 */
@EventsHandler(OrderPlaced, OrderPaid)
export class OrderSummaryProjector implements IEventHandler<OrderPlaced | OrderPaid> {
  constructor(private readonly em: EntityManager) {}

  async handle(event: OrderPlaced | OrderPaid): Promise<void> {
    const summary = await this.em.findOne(OrderSummary, { orderId: event.orderId });
    const status = event instanceof OrderPaid ? 'paid' : 'placed';
    if (!summary) {
      this.em.create(OrderSummary, { orderId: event.orderId, customerId: event.customerId, totalCents: event.totalCents, status, version: 1 });
      return;
    }
    summary.version++;
    if (status === 'paid') summary.status = 'paid';
  }
}
