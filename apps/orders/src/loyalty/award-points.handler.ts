import { LockMode } from '@mikro-orm/core';
import { EntityManager } from '@mikro-orm/postgresql';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { OrderPaid } from '@nest-outbox/example-contracts';
import { LoyaltyAccount } from './loyalty-account.entity.js';

/** Changes another aggregate from a handler; the event it raises commits with the change. */
@EventsHandler(OrderPaid)
export class AwardLoyaltyPoints implements IEventHandler<OrderPaid> {
  constructor(private readonly em: EntityManager) {}

  async handle(event: OrderPaid): Promise<void> {
    // Create-if-missing without a race, then lock the account so concurrent orders add up.
    await this.em.execute('insert into loyalty_account (customer_id, points) values (?, 0) on conflict do nothing', [
      event.customerId,
    ]);
    const account = await this.em.findOneOrFail(
      LoyaltyAccount,
      { customerId: event.customerId },
      { lockMode: LockMode.PESSIMISTIC_WRITE },
    );
    account.award(event.orderId, event.totalCents);
  }
}
