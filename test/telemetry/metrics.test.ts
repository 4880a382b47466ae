import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { startTelemetry } from '../../apps/shared/src/telemetry.js';
import { freshDatabase } from '../support/database.js';
import {
  Account,
  CountPings,
  Pinged,
  prepareFixtureDatabase,
  startFixtureApp,
  type FixtureApp,
} from '../support/fixture.js';
import { migrateOrders, post, startOrdersApp, type OrdersApp } from '../support/orders-app.js';
import { REDIS_URL, removePrefix, uniquePrefix } from '../support/redis.js';
import { waitUntil } from '../support/wait.js';
import { scrape, type Scrape } from './prometheus.js';

// The example's SDK set-up: metrics through a Prometheus exporter the app serves at GET /metrics.
// Every app of this file records into it; the service label tells them apart.
const telemetry = startTelemetry('orders');

@EventsHandler(Pinged)
class AlwaysFails implements IEventHandler<Pinged> {
  async handle(): Promise<void> {
    throw new Error('the ledger is closed');
  }
}

describe('metrics at GET /metrics, through the OpenTelemetry SDK and its Prometheus exporter', () => {
  const prefixes = [uniquePrefix('metrics'), uniquePrefix('metrics-failing'), uniquePrefix('metrics-lag')];
  let orders: OrdersApp;
  let failing: FixtureApp;
  let lagging: FixtureApp;
  let metrics: () => Promise<Scrape>;

  /** Scrapes until `condition` holds on a scrape, and returns that scrape. */
  async function scrapeUntil(what: string, condition: (scraped: Scrape) => boolean): Promise<Scrape> {
    let last: Scrape | undefined;
    await waitUntil(what, async () => condition((last = await metrics())));
    return last!;
  }

  beforeAll(async () => {
    const [ordersDb, failingDb, lagDb] = await Promise.all([
      freshDatabase('telemetry_metrics'),
      freshDatabase('telemetry_metrics_failing'),
      freshDatabase('telemetry_metrics_lag'),
    ]);
    await Promise.all([migrateOrders(ordersDb), prepareFixtureDatabase(failingDb), prepareFixtureDatabase(lagDb)]);
    orders = await startOrdersApp(ordersDb, { redis: REDIS_URL, prefix: prefixes[0] }, { telemetry });
    metrics = () => scrape(`${orders.url}/metrics`);
    failing = await startFixtureApp(
      failingDb,
      {
        service: 'failing',
        redis: REDIS_URL,
        prefix: prefixes[1],
        worker: { attempts: 2, backoff: { type: 'fixed', delayMs: 10 } },
      },
      [AlwaysFails, CountPings],
    );
    // No consumer ever registers under this prefix: the relay holds every row, and they age.
    lagging = await startFixtureApp(lagDb, {
      service: 'lagging',
      redis: REDIS_URL,
      prefix: prefixes[2],
      worker: { enabled: false },
    });
  });

  afterAll(async () => {
    await Promise.all([orders?.close(), failing?.close(), lagging?.close()]);
    await Promise.all(prefixes.map((prefix) => removePrefix(prefix)));
  });

  it('counts what the example did over HTTP, by type, consumer and handler, with durations', async () => {
    const placed = [];
    for (const customerId of ['ada', 'grace', 'alan']) {
      placed.push(await post<{ id: string }>(`${orders.url}/orders`, { customerId, totalCents: 1250 }));
    }
    for (const order of placed.slice(0, 2)) await post(`${orders.url}/orders/${order.id}/pay`);

    const service = { outbox_service: 'orders' };
    const placedType = { ...service, outbox_message_type: 'orders.order-placed.v1' };
    const paidType = { ...service, outbox_message_type: 'orders.order-paid.v1' };
    const awardedType = { ...service, outbox_message_type: 'loyalty.points-awarded.v1' };
    const handled = (labels: Record<string, string>, handler: string) => (scraped: Scrape) =>
      scraped.value('outbox_messages_handled_total', { ...labels, outbox_handler: handler });
    const m = await scrapeUntil(
      'every handler counted',
      (scraped) => handled(awardedType, 'SendPointsStatement')(scraped) === 2,
    );

    expect(m.value('outbox_messages_written_total', placedType)).toBe(3);
    expect(m.value('outbox_messages_written_total', paidType)).toBe(2);
    expect(m.value('outbox_messages_written_total', awardedType)).toBe(2);
    expect(m.value('outbox_messages_dispatched_total', { ...placedType, outbox_consumer: 'orders' })).toBe(3);
    expect(m.value('outbox_messages_dispatched_total', { ...paidType, outbox_consumer: 'orders' })).toBe(2);
    expect(m.value('outbox_messages_unrouted_total', service)).toBeUndefined();

    expect(handled(placedType, 'OrderSummaryProjector')(m)).toBe(3);
    expect(handled(placedType, 'SendOrderConfirmation')(m)).toBe(3);
    expect(handled(paidType, 'OrderSummaryProjector')(m)).toBe(2);
    expect(handled(paidType, 'AwardLoyaltyPoints')(m)).toBe(2);
    expect(m.value('outbox_messages_failed_total', service)).toBeUndefined();

    const projector = { ...placedType, outbox_handler: 'OrderSummaryProjector' };
    expect(m.value('outbox_handler_duration_count', { ...projector, outbox_outcome: 'handled' })).toBe(3);
    expect(m.value('outbox_handler_duration_bucket', { ...projector, le: '+Inf' })).toBe(3);
    expect(m.value('outbox_handler_duration_sum', projector)).toBeGreaterThan(0);
    expect(m.value('outbox_message_end_to_end_duration_count', projector)).toBe(3);
    expect(m.value('outbox_message_end_to_end_duration_sum', projector)).toBeGreaterThan(0);
    expect(m.text).toContain('# UNIT outbox_handler_duration s');

    // Gauges read at scrape time: once settled (a handler's commit is counted a moment before
    // BullMQ completes its job), nothing pending, nothing queued, nothing dead.
    await orders.monitor.waitUntilSettled();
    const settled = await scrapeUntil('a scrape after settling', () => true);
    expect(settled.value('outbox_pending_messages', service)).toBe(0);
    expect(settled.value('outbox_pending_oldest_age', service)).toBe(0);
    expect(settled.value('outbox_pending_stuck', service)).toBe(0);
    for (const state of ['waiting', 'active', 'delayed', 'dead_letter']) {
      expect(settled.value('outbox_queue_jobs', { ...service, outbox_job_state: state })).toBe(0);
    }
  });

  it('counts failed runs per attempt and the dead letter per failing handler; its sibling is handled', async () => {
    const em = failing.orm.em.fork();
    const account = new Account('metrics-1', 'metrics-1@example.com');
    account.ping('fails');
    await em.persist(account).flush();

    const service = { outbox_service: 'failing', outbox_message_type: 'Pinged' };
    const m = await scrapeUntil('the dead letter counted', (scraped) =>
      Boolean(scraped.value('outbox_messages_dead_lettered_total', service)),
    );
    expect(m.value('outbox_messages_failed_total', { ...service, outbox_handler: 'AlwaysFails' })).toBe(2);
    expect(
      m.value('outbox_messages_dead_lettered_total', {
        ...service,
        outbox_handler: 'AlwaysFails',
        outbox_reason: 'handler-failed',
      }),
    ).toBe(1);
    expect(m.value('outbox_messages_handled_total', { ...service, outbox_handler: 'CountPings' })).toBe(1);
    expect(m.value('outbox_handler_duration_count', { ...service, outbox_outcome: 'failed' })).toBe(2);
    const deadLetters = await scrapeUntil('the dead letter in the queue gauge', (scraped) =>
      Boolean(scraped.value('outbox_queue_jobs', { outbox_service: 'failing', outbox_job_state: 'dead_letter' })),
    );
    expect(deadLetters.value('outbox_queue_jobs', { outbox_service: 'failing', outbox_job_state: 'dead_letter' })).toBe(
      1,
    );
  });

  it('reports the relay lag: pending rows and the age of the oldest', async () => {
    const em = lagging.orm.em.fork();
    for (let i = 0; i < 3; i++) {
      const account = new Account(`lag-${i}`, `lag-${i}@example.com`);
      account.ping('waits');
      em.persist(account);
    }
    await em.flush();
    const service = { outbox_service: 'lagging' };
    const m = await scrapeUntil(
      'the oldest row has aged',
      (scraped) => (scraped.value('outbox_pending_oldest_age', service) ?? 0) > 0.05,
    );
    expect(m.value('outbox_pending_messages', service)).toBe(3);
    expect(m.value('outbox_messages_written_total', { ...service, outbox_message_type: 'Pinged' })).toBe(3);
    // Its worker is off: the process reports no queue of its own.
    expect(m.value('outbox_queue_jobs', service)).toBeUndefined();
  });
});
