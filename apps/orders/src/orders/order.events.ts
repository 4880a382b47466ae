import { OutboxEvent } from 'nest-outbox';

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
