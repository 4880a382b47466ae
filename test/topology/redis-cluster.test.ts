import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { EntityManager } from '@mikro-orm/postgresql';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import type { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import { OUTBOX_QUEUE, OutboxEvent, OutboxRetention, type OutboxJobData } from 'nest-outbox';
import { recordEffect, startFixtureApp, type FixtureApp, type FixtureOutboxOptions } from '../support/fixture.js';
import { PrivateRedisCluster } from '../support/redis-cluster.js';
import { uniquePrefix } from '../support/redis.js';
import { effectsOf, inboxOf, publish, serviceDatabase, sorted } from '../support/topology.js';
import { waitUntil } from '../support/wait.js';

@OutboxEvent('topo.cluster-order-placed.v1')
class OrderPlaced {
  constructor(readonly orderId: string) {}
}

@EventsHandler(OrderPlaced)
class ChargeOrder implements IEventHandler<OrderPlaced> {
  constructor(private readonly em: EntityManager) {}
  handle(): Promise<void> {
    return recordEffect(this.em, 'ChargeOrder');
  }
}

@EventsHandler(OrderPlaced)
class ShipOrder implements IEventHandler<OrderPlaced> {
  constructor(private readonly em: EntityManager) {}
  handle(): Promise<void> {
    return recordEffect(this.em, 'ShipOrder');
  }
}

let cluster: PrivateRedisCluster;
let node: Redis;

/** Every key in the cluster matching `pattern`, from whichever node holds it. */
async function keysMatching(pattern: string): Promise<string[]> {
  const found: string[] = [];
  for (const port of cluster.ports) {
    const client = cluster.node(port);
    try {
      found.push(...(await client.keys(pattern)));
    } finally {
      client.disconnect();
    }
  }
  return found;
}

const slotOf = async (key: string) => Number(await node.cluster('KEYSLOT', key));

beforeAll(async () => {
  cluster = await PrivateRedisCluster.start(3);
  node = cluster.node();
}, 60_000);

afterAll(async () => {
  node?.disconnect();
  await cluster?.stop();
});

describe('topology on a Redis Cluster (3 masters)', () => {
  const prefix = uniquePrefix('cluster');
  const apps: FixtureApp[] = [];
  let writer: FixtureApp;
  let sender: FixtureApp;
  let relay: FixtureApp;
  let billing: FixtureApp;
  let shipping: FixtureApp;

  beforeAll(async () => {
    const common: FixtureOutboxOptions = {
      redis: { cluster: cluster.nodes },
      prefix,
      retention: { enabled: false },
    };
    const [ordersDb, billingDb, shippingDb] = await Promise.all(
      ['topo_cluster_orders', 'topo_cluster_billing', 'topo_cluster_shipping'].map((name) => serviceDatabase(name)),
    );
    const start = async (
      url: string,
      options: FixtureOutboxOptions,
      providers: Parameters<typeof startFixtureApp>[2],
    ) => {
      const app = await startFixtureApp(url, { ...common, ...options }, providers);
      apps.push(app);
      return app;
    };
    billing = await start(billingDb, { service: 'billing', relay: { enabled: false } }, [ChargeOrder]);
    shipping = await start(shippingDb, { service: 'shipping', relay: { enabled: false } }, [ShipOrder]);
    // The producer split in two processes: one writes (capture only, every row left to a relay), the
    // other relays on a schedule so slow that only the wake-up from the writer's commit can move
    // its rows within the test.
    writer = await start(
      ordersDb,
      { service: 'orders', relay: { enabled: false, dispatchOnCommit: false }, worker: { enabled: false } },
      [],
    );
    // A third producer process sends its rows on commit itself (the default).
    sender = await start(ordersDb, { service: 'orders', relay: { enabled: false }, worker: { enabled: false } }, []);
    relay = await start(
      ordersDb,
      { service: 'orders', relay: { intervalMs: 3_600_000 }, worker: { enabled: false } },
      [],
    );
  }, 120_000);

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
  });

  it('delivers each message once to each service; a commit in one process wakes the relay in another', async () => {
    // The relay's boot drain found nothing; it now sleeps until woken.
    await relay.runner.relayIdle();
    const placed = await publish(writer, ...Array.from({ length: 20 }, (_, i) => new OrderPlaced(`c${i}`)));

    await waitUntil(
      'both services handled every message',
      async () =>
        (await effectsOf(billing)).ChargeOrder?.length === 20 && (await effectsOf(shipping)).ShipOrder?.length === 20,
      // The relay's schedule is an hour: only the writer's wake-up, through Redis, moves the rows.
      20_000,
    );
    await relay.monitor.waitUntilSettled(10_000);
    // Moved by the relay app (the writer has no relay), counted once it marked them.
    const dispatched = () => relay.monitor.processCounters().relay.dispatched;
    await waitUntil('the relay counted its batch', () => dispatched() >= 20);
    expect(dispatched()).toBe(20);

    expect(await effectsOf(billing)).toEqual({ ChargeOrder: sorted(placed) });
    expect(await inboxOf(billing)).toEqual({ ChargeOrder: sorted(placed) });
    expect(await effectsOf(shipping)).toEqual({ ShipOrder: sorted(placed) });
    expect(await inboxOf(shipping)).toEqual({ ShipOrder: sorted(placed) });
    const { services } = await relay.monitor.snapshot();
    expect(services.billing).toMatchObject({ completed: 20, failed: 0 });
    expect(services.shipping).toMatchObject({ completed: 20, failed: 0 });
  });

  it('a process sending on commit enqueues to both services on the cluster itself', async () => {
    const before = relay.monitor.processCounters().relay.dispatched;
    const placed = await publish(sender, ...Array.from({ length: 5 }, (_, i) => new OrderPlaced(`s${i}`)));
    const handled = async (app: FixtureApp, handler: string) =>
      ((await effectsOf(app))[handler] ?? []).filter((id) => placed.includes(id)).length;
    await waitUntil(
      'both services handled the sent messages',
      async () => (await handled(billing, 'ChargeOrder')) === 5 && (await handled(shipping, 'ShipOrder')) === 5,
      20_000,
    );
    await waitUntil('the sender marked its rows', () => sender.monitor.processCounters().relay.dispatched === 5);
    expect(relay.monitor.processCounters().relay.dispatched).toBe(before);
  });

  it("puts each service's queue on a slot of its own (hash tags), every key of one queue on that slot", async () => {
    const billingQueue = billing.app.get<Queue<OutboxJobData>>(OUTBOX_QUEUE);
    const shippingQueue = shipping.app.get<Queue<OutboxJobData>>(OUTBOX_QUEUE);
    expect(billingQueue.name).toBe('{billing}');
    expect(shippingQueue.name).toBe('{shipping}');

    const [billingKeys, shippingKeys] = await Promise.all(
      [billingQueue, shippingQueue].map((queue) => keysMatching(`${queue.toKey('')}*`)),
    );
    expect(billingKeys.length).toBeGreaterThan(20); // a hash per job, plus the queue's own keys
    const billingSlots = new Set(await Promise.all(billingKeys.map(slotOf)));
    const shippingSlots = new Set(await Promise.all(shippingKeys.map(slotOf)));
    expect(billingSlots.size).toBe(1);
    expect(shippingSlots.size).toBe(1);
    expect([...billingSlots][0]).not.toBe([...shippingSlots][0]);
  });

  it("runs retention's check of live jobs (a pipeline over one queue's keys) on the cluster", async () => {
    // Marks of completed jobs, made old: retention asks Redis whether each job may still run.
    await billing.sql("update inbox_message set processed_at = now() - interval '30 days'");
    expect(await billing.app.get(OutboxRetention).runOnce()).toEqual({ outboxDeleted: 0, inboxDeleted: 25 });
  });
});

describe('a prefix with its own hash tag on a Redis Cluster', () => {
  const tag = uniquePrefix('tagged');
  const prefix = `{${tag}}`;
  const apps: FixtureApp[] = [];

  afterAll(async () => {
    await Promise.all(apps.map((app) => app.close()));
  });

  it('keeps every key of the outbox (queues and registry) on the one slot of the tag, and delivers', async () => {
    const common: FixtureOutboxOptions = { redis: { cluster: cluster.nodes }, prefix, retention: { enabled: false } };
    const billing = await startFixtureApp(
      await serviceDatabase('topo_tagged_billing'),
      { ...common, service: 'billing', relay: { enabled: false } },
      [ChargeOrder],
    );
    apps.push(billing);
    const orders = await startFixtureApp(
      await serviceDatabase('topo_tagged_orders'),
      { ...common, service: 'orders', worker: { enabled: false } },
      [],
    );
    apps.push(orders);

    const placed = await publish(orders, ...Array.from({ length: 5 }, (_, i) => new OrderPlaced(`t${i}`)));
    await orders.monitor.waitUntilSettled(20_000);
    expect(await effectsOf(billing)).toEqual({ ChargeOrder: sorted(placed) });

    const keys = await keysMatching(`${prefix}*`);
    expect(keys.some((key) => key.includes(':registry:'))).toBe(true);
    expect(keys.some((key) => key.startsWith(`${prefix}:billing:`))).toBe(true);
    expect(new Set(await Promise.all(keys.map(slotOf)))).toEqual(new Set([await slotOf(tag)]));
  });
});
