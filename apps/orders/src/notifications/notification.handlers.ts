import { EntityManager } from '@mikro-orm/postgresql';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { currentMessage } from 'nest-outbox';
import { LoyaltyPointsAwarded } from '../loyalty/loyalty.events.js';
import { OrderPlaced } from '@nest-outbox/example-contracts';
import { Notification } from './notification.entity.js';

@EventsHandler(OrderPlaced)
export class SendOrderConfirmation implements IEventHandler<OrderPlaced> {
  constructor(private readonly em: EntityManager) {}

  handle(event: OrderPlaced): void {
    this.em.create(Notification, {
      customerId: event.customerId,
      kind: 'order-confirmation',
      text: `Order ${event.orderId} received: ${(event.totalCents / 100).toFixed(2)}`,
      messageId: currentMessage()!.headers.messageId,
    });
  }
}

@EventsHandler(LoyaltyPointsAwarded)
export class SendPointsStatement implements IEventHandler<LoyaltyPointsAwarded> {
  constructor(private readonly em: EntityManager) {}

  handle(event: LoyaltyPointsAwarded): void {
    this.em.create(Notification, {
      customerId: event.customerId,
      kind: 'points-statement',
      text: `+${event.points} points for order ${event.orderId}, balance ${event.balance}`,
      messageId: currentMessage()!.headers.messageId,
    });
  }
}
