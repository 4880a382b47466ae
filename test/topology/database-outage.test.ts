import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { EntityManager } from '@mikro-orm/postgresql';
import { Logger } from '@nestjs/common';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import type { Queue } from 'bullmq';
import { OUTBOX_QUEUE, OutboxEvent, type OutboxJobData } from 'nest-outbox';
import { recordEffect, startFixtureApp, type FixtureApp, type FixtureOutboxOptions } from '../support/fixture.js';
import { REDIS_URL, removePrefix, uniquePrefix } from '../support/redis.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { publish, serviceDatabase } from '../support/topology.js';
import { waitUntil } from '../support/wait.js';

@OutboxEvent('topo.payment-due.v1')
class PaymentDue {
  constructor(readonly invoiceId: string) {}
}

@EventsHandler(PaymentDue)
class CollectPayment implements IEventHandler<PaymentDue> {
  constructor(private readonly em: EntityManager) {}
  async handle(): Promise<void> {
    // A few milliseconds of work, so jobs are in flight in both processes when the path is cut.
    await this.em.execute('select pg_sleep(0.005)');
    await recordEffect(this.em, 'CollectPayment');
  }
}

const CONCURRENCY = 4;
const OUTAGE_LOG = /^event=outbox\.worker\.database_outage .*PostgreSQL is unreachable/;
const RECOVERY_LOG = /^PostgreSQL answers again/;

/**
 * Two processes of billing on one queue and one database. Only `cut`'s path to PostgreSQL fails:
 * it connects through a proxy the test closes. (A private server that only `cut` used would not
 * do: both processes of a service share its database, which stays up for the other.)
 */
describe('a database outage in one process of a service', () => {
  const prefix = uniquePrefix('db-outage');
  let proxy: TcpProxy;
  let orders: FixtureApp;
  let cut: FixtureApp;
  let healthy: FixtureApp;
  let healthyClosed = false;

  const handledIds = async () =>
    new Set((await healthy.sql('select message_id from effect')).map((row) => row.message_id as string));
  const handled = (app: FixtureApp) => app.monitor.processCounters().worker;

  beforeAll(async () => {
    const billingDb = await serviceDatabase('topo_outage_billing');
    const server = new URL(billingDb);
    proxy = await TcpProxy.start({ host: server.hostname, port: Number(server.port || 5432) });
    const billing: FixtureOutboxOptions = {
      redis: REDIS_URL,
      prefix,
      service: 'billing',
      relay: { enabled: false },
      retention: { enabled: false },
      worker: { concurrency: CONCURRENCY },
    };
    cut = await startFixtureApp(TcpProxy.through(billingDb, proxy), billing, [CollectPayment]);
    healthy = await startFixtureApp(billingDb, billing, [CollectPayment]);
    orders = await startFixtureApp(
      await serviceDatabase('topo_outage_orders'),
      { redis: REDIS_URL, prefix, service: 'orders', worker: { enabled: false }, retention: { enabled: false } },
      [],
    );
  });

  afterAll(async () => {
    await proxy?.restore();
    await Promise.all([orders?.close(), cut?.close(), healthyClosed ? undefined : healthy?.close()]);
    await proxy?.cut();
    await removePrefix(prefix);
    jest.restoreAllMocks();
  });

  it('pauses only that process: the other handles every job meanwhile, no attempt is spent, the outage is logged once, and it resumes after', async () => {
    const write = (n: number, tag: string) =>
      publish(orders, ...Array.from({ length: n }, (_, i) => new PaymentDue(`${tag}-${i}`)));
    const before = await write(20, 'before');
    // Counted by the workers (their `completed` events), which come a moment after the effects commit.
    await waitUntil('messages before the outage handled', () => handled(cut).handled + handled(healthy).handled === 20);

    const errors = jest.spyOn(Logger.prototype, 'error');
    const logs = jest.spyOn(Logger.prototype, 'log');
    const logged = (spy: typeof errors, pattern: RegExp) =>
      spy.mock.calls.filter(([message]) => pattern.test(String(message))).length;
    const cutHandledBefore = handled(cut).handled;

    await proxy.cut();
    const during = await write(60, 'during');
    // Every message written during the outage is handled while the path is still cut: by the other
    // process, including those the cut one took and handed back.
    await waitUntil(
      'messages of the outage handled by the healthy process',
      () => handled(cut).handled + handled(healthy).handled >= 80,
    );
    expect((await handledIds()).size).toBe(80);
    expect(proxy.isOpen).toBe(false);
    expect(handled(cut).handled).toBe(cutHandledBefore);
    expect(logged(errors, OUTAGE_LOG)).toBe(1);

    const queue = healthy.app.get<Queue<OutboxJobData>>(OUTBOX_QUEUE);
    const jobs = await Promise.all([...before, ...during].map((id) => queue.getJob(id)));
    // The cut process did take jobs and handed them back rather than failing them; then it paused:
    // no more than it had in hands at once (its concurrency) when it noticed, not one job after another.
    const handedBack = jobs.reduce((sum, job) => sum + (job?.data.setAside ?? 0), 0);
    expect(handedBack).toBeGreaterThan(0);
    expect(handedBack).toBeLessThanOrEqual(CONCURRENCY);
    expect(jobs.map((job) => [job?.finishedOn !== undefined, job?.attemptsMade, job?.failedReason ?? ''])).toEqual(
      jobs.map(() => [true, 1, '']),
    );
    expect(handled(cut).retried + handled(healthy).retried).toBe(0);

    // Back: the healthy process leaves, so only the cut one can handle what comes next.
    await proxy.restore();
    await healthy.close();
    healthyClosed = true;
    await write(10, 'after');
    await waitUntil(
      'messages after the outage handled by the process that was cut',
      () => handled(cut).handled >= cutHandledBefore + 10,
    );
    expect(handled(cut).handled).toBe(cutHandledBefore + 10);
    const [{ n }] = await cut.sql('select count(*)::int as n from effect');
    expect(n).toBe(90);
    expect(logged(errors, OUTAGE_LOG)).toBe(1);
    expect(logged(logs, RECOVERY_LOG)).toBe(1);
    const [duplicates] = await cut.sql(
      'select count(*)::int as n from (select message_id from effect group by 1 having count(*) > 1) d',
    );
    expect(duplicates.n).toBe(0);
  });
});
