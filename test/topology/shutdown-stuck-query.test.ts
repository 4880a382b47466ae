import { afterAll, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { EntityManager } from '@mikro-orm/postgresql';
import { Inject, Logger } from '@nestjs/common';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { OutboxEvent } from 'nest-outbox';
import { recordEffect, startFixtureApp, type FixtureApp, type FixtureOutboxOptions } from '../support/fixture.js';
import { REDIS_URL, removePrefix, uniquePrefix } from '../support/redis.js';
import { effectsOf, inboxOf, publish, serviceDatabase } from '../support/topology.js';
import { waitUntil } from '../support/wait.js';

@OutboxEvent('topo.invoice-due.v1')
class InvoiceDue {
  constructor(readonly invoiceId: string) {}
}

/** Whether this app's handler gets stuck in its query (the first app) or finishes (the second). */
const STUCK = Symbol('STUCK');

@EventsHandler(InvoiceDue)
class SettleInvoice implements IEventHandler<InvoiceDue> {
  constructor(
    private readonly em: EntityManager,
    @Inject(STUCK) private readonly stuck: boolean,
  ) {}

  async handle(): Promise<void> {
    // Written first, in the handler's transaction: only a rollback can take it away.
    await recordEffect(this.em, this.stuck ? 'SettleInvoice (stuck run)' : 'SettleInvoice');
    if (this.stuck) await this.em.execute('select pg_sleep(600)');
  }
}

const SHUTDOWN_TIMEOUT_MS = 1000;

/** Whether `app.close()` returns within `ms` (it is left running if not). */
async function closesWithin(app: FixtureApp, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), ms)));
  try {
    return await Promise.race([app.close().then(() => true), late]);
  } finally {
    clearTimeout(timer);
  }
}

describe('shutdown with a handler stuck in a query', () => {
  const prefix = uniquePrefix('stuck-query');
  let orders: FixtureApp;
  let other: FixtureApp | undefined;
  let billingDb: string;

  const billing = (stuck: boolean): Parameters<typeof startFixtureApp> => [
    billingDb,
    {
      redis: REDIS_URL,
      prefix,
      service: 'billing',
      relay: { enabled: false },
      retention: { enabled: false },
      shutdownTimeoutMs: SHUTDOWN_TIMEOUT_MS,
      // A job whose process is gone runs again this soon (BullMQ lock and stalled check).
      worker: { lockDurationMs: 2000, stalledIntervalMs: 1000 },
    } satisfies FixtureOutboxOptions,
    [SettleInvoice, { provide: STUCK, useValue: stuck }],
  ];
  /** Backends of the billing database running the stuck query. */
  const sleeping = async () =>
    orders.sql(
      `select pid from pg_stat_activity
        where datname = ? and state = 'active' and query like '%pg_sleep(600)%' and pid <> pg_backend_pid()`,
      [new URL(billingDb).pathname.slice(1)],
    );

  beforeAll(async () => {
    billingDb = await serviceDatabase('topo_stuck_billing');
    orders = await startFixtureApp(
      await serviceDatabase('topo_stuck_orders'),
      { redis: REDIS_URL, prefix, service: 'orders', worker: { enabled: false }, retention: { enabled: false } },
      [],
    );
  });

  afterAll(async () => {
    // After a failed run, a backend left sleeping would hold its connection (and this close) for ten minutes.
    await orders?.sql(
      `select pg_terminate_backend(pid) from pg_stat_activity where query like '%pg_sleep(600)%' and pid <> pg_backend_pid()`,
    );
    await Promise.all([orders?.close(), other?.close()]);
    await removePrefix(prefix);
    jest.restoreAllMocks();
  });

  it('returns within the timeout, cancels the query on the server, rolls the run back; another instance runs the job', async () => {
    const stuckApp = await startFixtureApp(...billing(true));
    const [id] = await publish(orders, new InvoiceDue('i1'));
    await waitUntil('the handler stuck in its query', async () => (await sleeping()).length === 1);
    // Started only now, so the stuck app took the job; it waits while that app holds the job's lock.
    other = await startFixtureApp(...billing(false));
    const warnings = jest.spyOn(Logger.prototype, 'warn');
    // Kysely reports the cancelled statement ("canceling statement due to user request") on the console.
    jest.spyOn(console, 'error').mockImplementation(() => undefined);

    expect(await closesWithin(stuckApp, SHUTDOWN_TIMEOUT_MS + 2000)).toBe(true);
    expect(warnings.mock.calls.some(([message]) => /^Shutdown took longer/.test(String(message)))).toBe(true);
    // Cancelled on the server: a query whose client merely went away would sleep on for ten minutes.
    await waitUntil('no backend still sleeping', async () => (await sleeping()).length === 0, 2000);

    await waitUntil(
      'the job handled by the other instance',
      async () => (await effectsOf(other!)).SettleInvoice?.[0] === id,
    );
    // The stuck run's effect and inbox mark rolled back with its transaction; the other run's stand.
    expect(await effectsOf(other)).toEqual({ SettleInvoice: [id] });
    expect(await inboxOf(other)).toEqual({ SettleInvoice: [id] });
    await orders.monitor.waitUntilSettled(10_000);
  });
});
