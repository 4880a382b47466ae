import { OutboxEvent } from 'nest-outbox';

/**
 * Events the orders service publishes. The stable names are the wire contract: a consumer finds
 * its handlers by them, whatever the classes are called on either side.
 */
@OutboxEvent('orders.order-placed.v1')
export class OrderPlaced {
  constructor(
    readonly orderId: string,
    readonly customerId: string,
    readonly totalCents: number,
  ) {}
}

@OutboxEvent('orders.order-paid.v1')
export class OrderPaid {
  constructor(
    readonly orderId: string,
    readonly customerId: string,
    readonly totalCents: number,
  ) {}
}
