import { EntityManager } from '@mikro-orm/postgresql';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { OrderPaid, OrderPlaced } from '@nest-outbox/example-contracts';

/**
 * Maintains the read model (`order_summary`) in the handler's own transaction, with its inbox
 * mark. Delivery order across messages is not guaranteed and both events of an order may be
 * handled at once, so one upsert does it: whichever comes first creates the row, and a paid
 * order never goes back to placed.
 */
@EventsHandler(OrderPlaced, OrderPaid)
export class OrderSummaryProjector implements IEventHandler<OrderPlaced | OrderPaid> {
  constructor(private readonly em: EntityManager) {}

  async handle(event: OrderPlaced | OrderPaid): Promise<void> {
    const status = event instanceof OrderPaid ? 'paid' : 'placed';
    await this.em.execute(
      `insert into order_summary (order_id, customer_id, total_cents, status, version) values (?, ?, ?, ?, 1)
       on conflict (order_id) do update set version = order_summary.version + 1,
         status = case when excluded.status = 'paid' then 'paid' else order_summary.status end`,
      [event.orderId, event.customerId, event.totalCents, status],
    );
  }
}
