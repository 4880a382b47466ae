import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { freshDatabase } from './support/database.js';
import { migrateOrders, post, startOrdersApp, type OrdersApp } from './support/orders-app.js';
import { removePrefix, uniquePrefix, REDIS_URL } from './support/redis.js';
import { waitUntil } from './support/wait.js';

describe('the orders example, end to end over HTTP', () => {
  const prefix = uniquePrefix('e2e');
  let service: OrdersApp;

  beforeAll(async () => {
    const databaseUrl = await freshDatabase('e2e');
    await migrateOrders(databaseUrl);
    service = await startOrdersApp(databaseUrl, { redis: REDIS_URL, prefix });
  });

  afterAll(async () => {
    await service?.close();
    await removePrefix(prefix);
  });

  it('places and pays an order: read model updated, notification sent, chained loyalty event handled', async () => {
    const order = await post<{ id: string; status: string }>(`${service.url}/orders`, {
      customerId: 'ada',
      totalCents: 4250,
    });
    expect(order.status).toBe('placed');
    await post(`${service.url}/orders/${order.id}/pay`);
    await waitUntil('all messages handled', () => service.monitor.isSettled());

    const execute = (sql: string, params: unknown[] = []) => service.orm.em.getConnection().execute(sql, params);
    const [summary] = await execute('select status, total_cents from order_summary where order_id = ?', [order.id]);
    expect(summary).toEqual({ status: 'paid', total_cents: 4250 });
    const notifications = await execute('select kind, text from notification_log where customer_id = ? order by id', [
      'ada',
    ]);
    expect(notifications.map((n) => n.kind)).toEqual(['order-confirmation', 'points-statement']);
    expect(notifications[1].text).toContain('+42 points');
    const [account] = await execute('select points from loyalty_account where customer_id = ?', ['ada']);
    expect(account.points).toBe(42);

    const messages =
      await execute(`select type, headers->>'correlationId' as correlation, headers->>'causationId' as causation, headers->>'messageId' as id
      from outbox_message order by id`);
    expect(messages.map((m) => m.type)).toEqual([
      'orders.order-placed.v1',
      'orders.order-paid.v1',
      'loyalty.points-awarded.v1',
    ]);
    const [, paid, awarded] = messages;
    expect(awarded.causation).toBe(paid.id);
    expect(awarded.correlation).toBe(paid.correlation);
    expect(paid.causation).toBeNull();
  });

  it('rejects bad input with 400 and writes nothing', async () => {
    const response = await fetch(`${service.url}/orders`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ customerId: '', totalCents: -1 }),
    });
    expect(response.status).toBe(400);
  });
});
