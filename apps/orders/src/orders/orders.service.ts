import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable, NotFoundException } from '@nestjs/common';
import { Order } from './order.entity.js';

@Injectable()
export class OrdersService {
  constructor(private readonly em: EntityManager) {}

  /** The order and its OrderPlaced event commit together. */
  async place(customerId: string, totalCents: number): Promise<Order> {
    const order = new Order(customerId, totalCents);
    await this.em.persist(order).flush();
    return order;
  }

  /** Loaded from the database, changed, flushed: OrderPaid is written with the new status. */
  async pay(orderId: string): Promise<Order> {
    const order = await this.em.findOne(Order, orderId);
    if (!order) throw new NotFoundException(`Order ${orderId} does not exist.`);
    order.pay();
    await this.em.flush();
    return order;
  }
}
