import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { EntityManager } from '@mikro-orm/postgresql';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import type { Queue } from 'bullmq';
import { OUTBOX_QUEUE, OutboxEvent, OutboxReplay, type OutboxJobData } from 'nest-outbox';
import {
  outboxRows,
  recordEffect,
  startFixtureApp,
  type FixtureApp,
  type FixtureOutboxOptions,
} from '../support/fixture.js';
import { REDIS_URL, removePrefix, uniquePrefix } from '../support/redis.js';
import { effectsOf, inboxOf, publish, serviceDatabase, sorted } from '../support/topology.js';
import { waitUntil } from '../support/wait.js';

@OutboxEvent('topo.order-placed.v1')
class OrderPlaced {
  constructor(readonly orderId: string) {}
}

@OutboxEvent('topo.order-refunded.v1')
class OrderRefunded {
  constructor(readonly orderId: string) {}
}

@OutboxEvent('topo.address-changed.v1')
class AddressChanged {
  constructor(readonly orderId: string) {}
}

@OutboxEvent('topo.order-reviewed.v1')
class OrderReviewed {
  constructor(readonly orderId: string) {}
}

// Billing's handlers: one for a type shipping handles too, one for a type only billing handles.
@EventsHandler(OrderPlaced)
class ChargeOrder implements IEventHandler<OrderPlaced> {
  constructor(private readonly em: EntityManager) {}
  handle(): Promise<void> {
    return recordEffect(this.em, 'ChargeOrder');
  }
}

@EventsHandler(OrderRefunded)
class RefundOrder implements IEventHandler<OrderRefunded> {
  constructor(private readonly em: EntityManager) {}
  handle(): Promise<void> {
    return recordEffect(this.em, 'RefundOrder');
  }
}

// Shipping's handlers, likewise.
@EventsHandler(OrderPlaced)
class ShipOrder implements IEventHandler<OrderPlaced> {
  constructor(private readonly em: EntityManager) {}
  handle(): Promise<void> {
    return recordEffect(this.em, 'ShipOrder');
  }
}

@EventsHandler(AddressChanged)
class UpdateLabel implements IEventHandler<AddressChanged> {
  constructor(private readonly em: EntityManager) {}
  handle(): Promise<void> {
    return recordEffect(this.em, 'UpdateLabel');
  }
}

// A service that starts only later, for a type nobody subscribed to when its messages were written.
@EventsHandler(OrderReviewed)
class CollectReview implements IEventHandler<OrderReviewed> {
  constructor(private readonly em: EntityManager) {}
  handle(): Promise<void> {
    return recordEffect(this.em, 'CollectReview');
  }
}

const PLACED = 'topo.order-placed.v1';
const REVIEWED = 'topo.order-reviewed.v1';

describe('topology: a producer and two consuming services, each with its own database', () => {
  const prefix = uniquePrefix('topology');
  const apps: FixtureApp[] = [];
  let orders: FixtureApp;
  let billing: FixtureApp[];
  let shipping: FixtureApp;

  const common: FixtureOutboxOptions = { redis: REDIS_URL, prefix, retention: { enabled: false } };
  // Consumers only consume: their relay (of an outbox nobody writes to) stays off.
  const consumer = (service: string): FixtureOutboxOptions => ({ ...common, service, relay: { enabled: false } });

  async function start(url: string, options: FixtureOutboxOptions, providers: Parameters<typeof startFixtureApp>[2]) {
    const app = await startFixtureApp(url, options, providers);
    apps.push(app);
    return app;
  }

  const routedTo = async (ids: string[]) =>
    (await orders.sql('select id, routed_to from outbox_message where id = any(?::uuid[])', [`{${ids.join(',')}}`]))
      .map((row) => ({ id: row.id as string, routedTo: [...(row.routed_to as string[])].sort() }))
      .sort((a, b) => a.id.localeCompare(b.id));

  beforeAll(async () => {
    const [ordersDb, billingDb, shippingDb] = await Promise.all(
      ['topo_orders', 'topo_billing', 'topo_shipping'].map((name) => serviceDatabase(name)),
    );
    // Consumers first: a relay that finds no registered service at all holds its rows back.
    billing = [
      await start(billingDb, consumer('billing'), [ChargeOrder, RefundOrder]),
      await start(billingDb, consumer('billing'), [ChargeOrder, RefundOrder]),
    ];
    shipping = await start(shippingDb, consumer('shipping'), [ShipOrder, UpdateLabel]);
    orders = await start(ordersDb, { ...common, service: 'orders', worker: { enabled: false } }, []);
  });

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await removePrefix(prefix);
  });

  it('every message reaches each subscribed service once, in its own queue and database; a type one service subscribes to reaches only that one', async () => {
    const placed = await publish(orders, ...Array.from({ length: 30 }, (_, i) => new OrderPlaced(`o${i}`)));
    const refunded = await publish(orders, ...Array.from({ length: 5 }, (_, i) => new OrderRefunded(`o${i}`)));
    const relabelled = await publish(orders, ...Array.from({ length: 5 }, (_, i) => new AddressChanged(`o${i}`)));

    await orders.monitor.waitUntilSettled(30_000);

    // Each service's handlers ran once per message of the types it subscribes to, and its inbox
    // (in its own database) holds one mark per message and handler.
    const billingWant = { ChargeOrder: sorted(placed), RefundOrder: sorted(refunded) };
    const shippingWant = { ShipOrder: sorted(placed), UpdateLabel: sorted(relabelled) };
    expect(await effectsOf(billing[0])).toEqual(billingWant);
    expect(await inboxOf(billing[0])).toEqual(billingWant);
    expect(await effectsOf(shipping)).toEqual(shippingWant);
    expect(await inboxOf(shipping)).toEqual(shippingWant);

    // Jobs completed by each service's workers: its own messages, no more (nothing taken from the other).
    const handled = (app: FixtureApp) => app.monitor.processCounters().worker.handled;
    // Counted on the workers' `completed` events, a moment after Redis records the completion.
    await waitUntil('every job counted', () => handled(billing[0]) + handled(billing[1]) + handled(shipping) >= 70);
    expect(handled(billing[0]) + handled(billing[1])).toBe(35);
    expect(handled(shipping)).toBe(35);
    const { services } = await orders.monitor.snapshot();
    expect(services.billing).toMatchObject({ completed: 35, failed: 0 });
    expect(services.shipping).toMatchObject({ completed: 35, failed: 0 });

    // Where the producer routed each row, and what each job carried.
    expect(await routedTo(placed)).toEqual(sorted(placed).map((id) => ({ id, routedTo: ['billing', 'shipping'] })));
    expect(await routedTo(refunded)).toEqual(sorted(refunded).map((id) => ({ id, routedTo: ['billing'] })));
    expect(await routedTo(relabelled)).toEqual(sorted(relabelled).map((id) => ({ id, routedTo: ['shipping'] })));
    const billingQueue = billing[0].app.get<Queue<OutboxJobData>>(OUTBOX_QUEUE);
    const shippingQueue = shipping.app.get<Queue<OutboxJobData>>(OUTBOX_QUEUE);
    expect((await billingQueue.getJob(placed[0]))?.data).toMatchObject({
      type: PLACED,
      source: 'orders',
      handlers: ['ChargeOrder'],
    });
    expect((await shippingQueue.getJob(placed[0]))?.data).toMatchObject({
      type: PLACED,
      source: 'orders',
      handlers: ['ShipOrder'],
    });
    expect(await Promise.all(relabelled.map((id) => billingQueue.getJob(id)))).toEqual(relabelled.map(() => undefined));
    expect(await Promise.all(refunded.map((id) => shippingQueue.getJob(id)))).toEqual(refunded.map(() => undefined));
  });

  it('messages of a type nobody subscribes to are counted as unrouted; a service subscribing later gets them by replay, once', async () => {
    const before = (await orders.monitor.snapshot()).unrouted;
    const early = await publish(orders, ...Array.from({ length: 4 }, (_, i) => new OrderReviewed(`r${i}`)));
    await orders.monitor.waitUntilSettled(30_000);
    expect((await orders.monitor.snapshot()).unrouted).toBe(before + 4);
    expect(await routedTo(early)).toEqual(sorted(early).map((id) => ({ id, routedTo: [] })));

    // The reviews service starts (and registers) after those messages were dispatched.
    const reviews = await start(await serviceDatabase('topo_reviews'), consumer('reviews'), [CollectReview]);
    // Written after it registered: routed to it directly, so replay must not deliver these again.
    const late = await publish(orders, ...Array.from({ length: 2 }, (_, i) => new OrderReviewed(`late${i}`)));
    await orders.monitor.waitUntilSettled(30_000);
    expect(await routedTo(late)).toEqual(sorted(late).map((id) => ({ id, routedTo: ['reviews'] })));

    const replay = orders.app.get(OutboxReplay);
    // Billing does not subscribe to reviews: nothing of that type is delivered to it.
    expect(await replay.replay({ service: 'billing', types: [REVIEWED] })).toEqual({ delivered: 0 });
    // Time bounds apply to when the messages occurred: none of them is from the future.
    expect(await replay.replay({ service: 'reviews', from: new Date(Date.now() + 60_000) })).toEqual({ delivered: 0 });
    expect(await replay.replay({ service: 'reviews' })).toEqual({ delivered: 4 });
    await orders.monitor.waitUntilSettled(30_000);
    expect(await effectsOf(reviews)).toEqual({ CollectReview: sorted([...early, ...late]) });

    // A second replay finds every message already delivered to reviews.
    expect(await replay.replay({ service: 'reviews' })).toEqual({ delivered: 0 });
    await orders.monitor.waitUntilSettled(30_000);
    expect(await effectsOf(reviews)).toEqual({ CollectReview: sorted([...early, ...late]) });
    expect(await routedTo(early)).toEqual(sorted(early).map((id) => ({ id, routedTo: ['reviews'] })));
    expect((await orders.monitor.snapshot()).unrouted).toBe(before);
  });
});

describe('topology: no consuming service registered yet', () => {
  const prefix = uniquePrefix('topology-empty');
  const apps: FixtureApp[] = [];

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
    await removePrefix(prefix);
  });

  it('holds the rows pending (nothing can be said about who subscribes) until a consumer registers', async () => {
    const producer = await startFixtureApp(
      await serviceDatabase('topo_lonely_orders'),
      { redis: REDIS_URL, prefix, service: 'orders', worker: { enabled: false }, relay: { intervalMs: 100 } },
      [],
    );
    apps.push(producer);
    const [id] = await publish(producer, new OrderPlaced('early'));
    // Sent on commit, it finds no registry: its lease is given up, saying why, and the relay woken.
    const row = async () => (await outboxRows(producer)).find((r) => r.id === id)!;
    await waitUntil('the row handed back', async () => !(await row()).locked);
    expect((await row()).last_error).toBe('no service had registered its subscriptions');
    // Once the relay's drain is over, the row was looked at and left alone.
    await producer.runner.relayIdle();
    expect((await row()).locked).toBe(false);
    expect((await producer.monitor.snapshot()).pending).toBe(1);
    expect(producer.monitor.processCounters().relay.claimed).toBe(0);

    const consumer = await startFixtureApp(
      await serviceDatabase('topo_lonely_billing'),
      { redis: REDIS_URL, prefix, service: 'billing', relay: { enabled: false } },
      [ChargeOrder],
    );
    apps.push(consumer);
    await waitUntil('the held message handled', async () => (await effectsOf(consumer)).ChargeOrder?.[0] === id);
    expect((await producer.monitor.snapshot()).unrouted).toBe(0);
  });
});
