import { afterAll, beforeAll, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { EntityManager } from '@mikro-orm/postgresql';
import { Logger, type Provider } from '@nestjs/common';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import type { Queue } from 'bullmq';
import {
  OUTBOX_QUEUE,
  OutboxArgumentError,
  OutboxDeadLetters,
  OutboxEvent,
  currentMessage,
  type OutboxJobData,
} from 'nest-outbox';
import { recordEffect, startFixtureApp, type FixtureApp, type FixtureOutboxOptions } from '../support/fixture.js';
import { REDIS_URL, removePrefix, uniquePrefix } from '../support/redis.js';
import { publish, serviceDatabase } from '../support/topology.js';
import { waitUntil } from '../support/wait.js';

@OutboxEvent('topo.invoice-issued.v1')
class InvoiceIssued {
  constructor(readonly invoiceId: string) {}
}

/** Handlers named here throw, as if what they call were down, until the test fixes them. */
const broken = new Set<string>();
/** Every run of a handler, in the order they happened: message, handler, delivery attempt. */
const runs: Array<{ messageId: string; handler: string; attempt: number }> = [];

async function runAs(em: EntityManager, handler: string): Promise<void> {
  const message = currentMessage()!;
  runs.push({ messageId: message.headers.messageId, handler, attempt: message.attempt });
  if (broken.has(handler)) throw new Error(`${handler}: mail server down`);
  await recordEffect(em, handler);
}

// Two failing handlers between two succeeding siblings, by name as well as by provider order
// (both orders are tried): a sibling runs before and another after the failing ones.
@EventsHandler(InvoiceIssued)
class ArchiveInvoice implements IEventHandler<InvoiceIssued> {
  constructor(private readonly em: EntityManager) {}
  handle(): Promise<void> {
    return runAs(this.em, 'ArchiveInvoice');
  }
}

@EventsHandler(InvoiceIssued)
class EmailInvoice implements IEventHandler<InvoiceIssued> {
  constructor(private readonly em: EntityManager) {}
  handle(): Promise<void> {
    return runAs(this.em, 'EmailInvoice');
  }
}

@EventsHandler(InvoiceIssued)
class FileTaxes implements IEventHandler<InvoiceIssued> {
  constructor(private readonly em: EntityManager) {}
  handle(): Promise<void> {
    return runAs(this.em, 'FileTaxes');
  }
}

@EventsHandler(InvoiceIssued)
class RecordRevenue implements IEventHandler<InvoiceIssued> {
  constructor(private readonly em: EntityManager) {}
  handle(): Promise<void> {
    return runAs(this.em, 'RecordRevenue');
  }
}

const SIBLINGS = ['ArchiveInvoice', 'RecordRevenue'];
const FAILING = ['EmailInvoice', 'FileTaxes'];

describe.each([
  ['siblings listed around the failing handlers', [ArchiveInvoice, EmailInvoice, FileTaxes, RecordRevenue]],
  ['handlers listed in reverse', [RecordRevenue, FileTaxes, EmailInvoice, ArchiveInvoice]],
])('sibling isolation (%s)', (label: string, providers: Provider[]) => {
  const name = label.startsWith('siblings') ? 'around' : 'reverse';
  const prefix = uniquePrefix(`siblings-${name}`);
  let orders: FixtureApp;
  let invoicing: FixtureApp;
  let deadLetters: OutboxDeadLetters;
  let queue: Queue<OutboxJobData>;

  const stateOf = async (id: string) => (await queue.getJob(id))?.getState() ?? 'gone';
  const runsOf = (id: string) => {
    const counts: Record<string, number> = {};
    for (const run of runs) if (run.messageId === id) counts[run.handler] = (counts[run.handler] ?? 0) + 1;
    return counts;
  };
  const effects = async (id: string) => {
    const rows = await invoicing.sql('select handler, count(*)::int as n from effect where message_id = ? group by 1', [
      id,
    ]);
    return Object.fromEntries(rows.map((row) => [row.handler, row.n]));
  };
  const failingHandlers = async (id: string) => (await deadLetters.get(id))?.handlers.map((h) => h.name);

  beforeAll(async () => {
    // Dead letters are logged as errors by design; here they would only bury real failures.
    jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const common: FixtureOutboxOptions = { redis: REDIS_URL, prefix, retention: { enabled: false } };
    invoicing = await startFixtureApp(
      await serviceDatabase(`topo_invoicing_${name}`),
      {
        ...common,
        service: 'invoicing',
        relay: { enabled: false },
        // Long enough a backoff to look at the message between its first and second attempt. These
        // retry rules are invoicing's own; the producer (default: 5 attempts) must not impose its.
        worker: { attempts: 2, backoff: { type: 'fixed', delayMs: 2000, jitter: 0 } },
      },
      providers,
    );
    orders = await startFixtureApp(
      await serviceDatabase(`topo_invoice_orders_${name}`),
      { ...common, service: 'orders', worker: { enabled: false } },
      [],
    );
    deadLetters = invoicing.app.get(OutboxDeadLetters);
    queue = invoicing.app.get<Queue<OutboxJobData>>(OUTBOX_QUEUE);
  });

  beforeEach(() => {
    broken.clear();
    runs.length = 0;
  });

  afterAll(async () => {
    await Promise.all([invoicing?.close(), orders?.close()]);
    await removePrefix(prefix);
    jest.restoreAllMocks();
  });

  it('siblings commit on the first attempt and never run again; the dead letter names only the failing handlers; retry one handler, then discard the last', async () => {
    for (const handler of FAILING) broken.add(handler);
    const [id] = await publish(orders, new InvoiceIssued('first'));

    await waitUntil('the first attempt over, the retry backing off', async () => {
      const job = await queue.getJob(id);
      return job !== undefined && job.attemptsMade === 1 && (await job.isDelayed());
    });
    // Committed by the failed attempt itself, whichever side of the failing handlers they ran on.
    expect(await effects(id)).toEqual({ ArchiveInvoice: 1, RecordRevenue: 1 });
    const first = runs.filter((run) => run.messageId === id && run.attempt === 1).map((run) => run.handler);
    expect([...first].sort()).toEqual([...SIBLINGS, ...FAILING].sort());
    const failingAt = first.map((handler, i) => (FAILING.includes(handler) ? i : -1)).filter((i) => i >= 0);
    expect(first.findIndex((handler) => SIBLINGS.includes(handler))).toBeLessThan(Math.min(...failingAt));
    expect(first.findLastIndex((handler) => SIBLINGS.includes(handler))).toBeGreaterThan(Math.max(...failingAt));

    await waitUntil('the dead letter', async () => (await stateOf(id)) === 'failed');
    const letter = (await deadLetters.get(id))!;
    expect(letter).toMatchObject({ service: 'invoicing', source: 'orders', reason: 'handler-failed', attempts: 2 });
    expect(letter.handlers.map((handler) => [handler.name, handler.attempts])).toEqual([
      ['EmailInvoice', 2],
      ['FileTaxes', 2],
    ]);
    // Another service's operator sees the same dead letter through `of`.
    expect((await orders.app.get(OutboxDeadLetters).of('invoicing').get(id))?.handlers).toEqual(letter.handlers);
    expect(runsOf(id)).toEqual({ ArchiveInvoice: 1, EmailInvoice: 2, FileTaxes: 2, RecordRevenue: 1 });
    // A sibling that succeeded is not a failed handler: it cannot be retried or discarded.
    await expect(deadLetters.retry(id, { handler: 'ArchiveInvoice' })).rejects.toBeInstanceOf(OutboxArgumentError);
    await expect(deadLetters.discard(id, { handler: 'RecordRevenue' })).rejects.toBeInstanceOf(OutboxArgumentError);

    // Retry of one handler: it runs alone; the message stays a dead letter for the one still failing.
    broken.delete('FileTaxes');
    await deadLetters.retry(id, { handler: 'FileTaxes' });
    await waitUntil(
      'a dead letter again, for EmailInvoice only',
      async () => (await stateOf(id)) === 'failed' && (await failingHandlers(id))?.join() === 'EmailInvoice',
    );
    expect((await deadLetters.get(id))?.reason).toBe('still-failing');
    expect(runsOf(id)).toEqual({ ArchiveInvoice: 1, EmailInvoice: 2, FileTaxes: 3, RecordRevenue: 1 });
    expect(await effects(id)).toEqual({ ArchiveInvoice: 1, FileTaxes: 1, RecordRevenue: 1 });

    // Giving up the last failing handler leaves nothing to wait for: the dead letter goes.
    await deadLetters.discard(id, { handler: 'EmailInvoice' });
    expect(await stateOf(id)).toBe('gone');
    expect(runsOf(id)).toEqual({ ArchiveInvoice: 1, EmailInvoice: 2, FileTaxes: 3, RecordRevenue: 1 });
  });

  it('discard one failing handler, then retry the other: the message completes without the discarded one or the siblings running again', async () => {
    for (const handler of FAILING) broken.add(handler);
    const [id] = await publish(orders, new InvoiceIssued('second'));
    await waitUntil('the dead letter', async () => (await stateOf(id)) === 'failed');

    await deadLetters.discard(id, { handler: 'FileTaxes' });
    const letter = (await deadLetters.get(id))!;
    expect(letter.handlers.map((handler) => handler.name)).toEqual(['EmailInvoice']);
    expect(letter.discarded).toEqual(['FileTaxes']);

    // FileTaxes still fails, but it was given up: only EmailInvoice runs, and then the message is done.
    broken.delete('EmailInvoice');
    await deadLetters.retry(id, { handler: 'EmailInvoice' });
    await waitUntil('the message completed', async () => (await stateOf(id)) === 'completed');
    expect(await effects(id)).toEqual({ ArchiveInvoice: 1, EmailInvoice: 1, RecordRevenue: 1 });
    expect(runsOf(id)).toEqual({ ArchiveInvoice: 1, EmailInvoice: 3, FileTaxes: 2, RecordRevenue: 1 });
    expect(await deadLetters.count()).toBe(0);
  });
});
