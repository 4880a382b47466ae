import { OutboxEvent } from 'nest-outbox';

@OutboxEvent('loyalty.points-awarded.v1')
export class LoyaltyPointsAwarded {
  constructor(
    readonly customerId: string,
    readonly orderId: string,
    readonly points: number,
    readonly balance: number,
  ) {}
}
