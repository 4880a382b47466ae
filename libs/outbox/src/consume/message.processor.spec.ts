import { describe, expect, it, jest } from '@jest/globals';
import { UnrecoverableError, type Job } from 'bullmq';
import { OutboxEvent } from '../message/event-type.js';
import { OutboxHandlerError, OutboxHandlersError, OutboxVersionAheadError } from '../outbox.errors.js';
import type { FailureRecord } from '../routing/failure-record.js';
import type { OutboxJobData } from '../routing/job-data.js';
import type { EventRoute, HandlerEntry } from './handler.explorer.js';
import type { HandlerRunner, RunMessage, RunOutcome } from './handler.runner.js';
import { MessageProcessor } from './message.processor.js';

const TYPE = 'spec.processor.order-placed.v1';
const ID = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';
const NEXT = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c';

@OutboxEvent(TYPE)
class OrderPlaced {
  constructor(readonly orderId: string) {}

  label(): string {
    return `order ${this.orderId}`;
  }
}

const entry = (name: string): HandlerEntry => ({ name, instance: { handle: async () => undefined }, ordered: false });
const routeOf = (...names: string[]): Map<string, EventRoute> =>
  new Map([[TYPE, { eventClass: OrderPlaced, handlers: names.map(entry) }]]);

type Behaviour = RunOutcome | Error;

/** A runner that answers per handler: an outcome, or an error it wraps as the real runner does. */
function fakeRunner(behaviour: Record<string, Behaviour> = {}) {
  const runs: Array<{ handler: string; event: object; message: RunMessage; seq: number | undefined }> = [];
  const runner = {
    run: async (handler: HandlerEntry, event: object, message: RunMessage, seq: number | undefined) => {
      runs.push({ handler: handler.name, event, message, seq });
      const answer = behaviour[handler.name] ?? { kind: 'handled' };
      if (answer instanceof Error) throw new OutboxHandlerError(handler.name, ID, TYPE, answer);
      return answer;
    },
    abortAll: () => undefined,
    turnCame: async () => false,
  };
  return { runner: runner as unknown as HandlerRunner, runs, ran: () => runs.map((run) => run.handler) };
}

function fakeJob(data: Partial<OutboxJobData> | unknown, fields: { progress?: unknown; attemptsMade?: number } = {}) {
  const updates: unknown[] = [];
  const job = {
    id: ID,
    data,
    progress: (fields.progress ?? 0) as unknown,
    attemptsMade: fields.attemptsMade ?? 0,
    updateProgress: async (progress: unknown) => {
      updates.push(progress);
      job.progress = progress;
    },
  };
  return { job: job as unknown as Job<OutboxJobData>, updates, record: () => job.progress as FailureRecord };
}

function message(fields: Partial<OutboxJobData> = {}): OutboxJobData {
  return {
    type: TYPE,
    payload: '{"orderId":"o1"}',
    headers: { messageId: ID, correlationId: ID, occurredAt: '2026-11-22T10:00:00.000Z' },
    aggregateType: 'Order',
    aggregateId: 'o1',
    key: 'Order:o1',
    source: 'orders',
    ...fields,
  };
}

function processorWith(routes: Map<string, EventRoute>, behaviour: Record<string, Behaviour> = {}) {
  const runner = fakeRunner(behaviour);
  const promote = jest.fn(async (_messageId: string) => undefined);
  return { processor: new MessageProcessor(routes, runner.runner, promote), promote, ...runner };
}

const failure = (error: string, attempts = 1) => ({
  error,
  attempts,
  firstFailedAt: '2026-11-22T10:00:00.000Z',
  lastFailedAt: '2026-11-22T10:00:00.000Z',
});

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  return promise.then(
    () => {
      throw new Error('expected a rejection');
    },
    (error: unknown) => error,
  );
}

describe('MessageProcessor', () => {
  it('runs each handler with a real event instance and the message: source, key, attempt and its place', async () => {
    const { processor, runs } = processorWith(routeOf('Invoicer', 'Mailer'));
    const { job, updates } = fakeJob(message({ order: { Invoicer: 4 } }), { attemptsMade: 2 });

    expect(await processor.process(job)).toEqual({ kind: 'done' });
    expect(runs.map((run) => [run.handler, run.seq])).toEqual([
      ['Invoicer', 4],
      ['Mailer', undefined],
    ]);
    expect(runs[0].event).toBeInstanceOf(OrderPlaced);
    expect((runs[0].event as OrderPlaced).label()).toBe('order o1');
    expect(runs[0].message).toEqual({
      type: TYPE,
      headers: message().headers,
      source: 'orders',
      key: 'Order:o1',
      attempt: 3,
    });
    // Nothing failed before or now: no progress round trip.
    expect(updates).toEqual([]);
  });

  it.each([
    ['failing first', ['Invoicer', 'Mailer']],
    ['failing last', ['Mailer', 'Invoicer']],
  ])('runs every handler when a sibling fails (%s) and throws one error naming the failed one', async (_, names) => {
    const declined = new Error('card declined');
    const { processor, ran } = processorWith(routeOf(...names), { Invoicer: declined });
    const { job, record } = fakeJob(message());

    const error = await rejection(processor.process(job));
    expect(ran()).toEqual(names);
    expect(error).toBeInstanceOf(OutboxHandlersError);
    expect((error as OutboxHandlersError).failures).toEqual(new Map([['Invoicer', declined]]));
    expect((error as Error).message).toBe(`Handler Invoicer failed on ${TYPE} (message ${ID}): card declined`);
    expect(Object.keys(record().failures)).toEqual(['Invoicer']);
    expect(record().failures.Invoicer).toMatchObject({ error: 'card declined', attempts: 1 });
  });

  it('records failures per handler across attempts: a handler failing again is counted, one that succeeds is removed', async () => {
    const progress = { failures: { Invoicer: failure('card declined'), Mailer: failure('SMTP down') } };
    const { processor } = processorWith(routeOf('Invoicer', 'Mailer', 'Auditor'), {
      Invoicer: new Error('card declined again'),
      Auditor: new Error('disk full'),
    });
    const { job, record } = fakeJob(message(), { progress, attemptsMade: 1 });

    const error = await rejection(processor.process(job));
    expect((error as OutboxHandlersError).failures.size).toBe(2);
    expect((error as Error).message).toMatch(
      /^2 handlers failed on .*Invoicer: card declined again; Auditor: disk full$/,
    );
    expect(record().failures).toEqual({
      Invoicer: expect.objectContaining({
        error: 'card declined again',
        attempts: 2,
        firstFailedAt: '2026-11-22T10:00:00.000Z',
      }),
      Auditor: expect.objectContaining({ error: 'disk full', attempts: 1 }),
    });
  });

  it('runs the handlers it has and hands the message back for those the job expects but this process lacks', async () => {
    const { processor, ran } = processorWith(routeOf('Invoicer', 'Mailer'));
    const { job } = fakeJob(message({ handlers: ['Auditor', 'Invoicer', 'Mailer'] }));

    expect(await processor.process(job)).toEqual({ kind: 'waiting-for-handlers', missing: ['Auditor'] });
    expect(ran()).toEqual(['Invoicer', 'Mailer']);
  });

  it('runs only the handlers the job expects, not every handler this process has for the type', async () => {
    const { processor, ran } = processorWith(routeOf('Invoicer', 'Mailer'));
    const { job } = fakeJob(message({ handlers: ['Mailer'] }));

    expect(await processor.process(job)).toEqual({ kind: 'done' });
    expect(ran()).toEqual(['Mailer']);
  });

  it('lets a failure of a handler it has win over waiting for one it lacks (the attempt is spent)', async () => {
    const { processor } = processorWith(routeOf('Invoicer'), { Invoicer: new Error('card declined') });
    const { job } = fakeJob(message({ handlers: ['Auditor', 'Invoicer'] }));

    await expect(processor.process(job)).rejects.toBeInstanceOf(OutboxHandlersError);
  });

  it('hands back without reading the payload a message for a type it has no handler for yet', async () => {
    const { processor, ran } = processorWith(new Map());
    const { job, updates } = fakeJob(message({ type: 'spec.newer.v1', payload: 'unreadable', handlers: ['Auditor'] }));

    expect(await processor.process(job)).toEqual({ kind: 'waiting-for-handlers', missing: ['Auditor'] });
    expect(ran()).toEqual([]);
    expect(updates).toEqual([]);
  });

  it('parks the message while an ordered handler waits for its turn, unless a sibling failed', async () => {
    const place = { handler: 'Invoicer', source: 'orders', key: 'Order:o1' };
    const parkedRun: RunOutcome = { kind: 'parked', place, seq: 5 };
    const { processor, ran } = processorWith(routeOf('Invoicer', 'Mailer'), { Invoicer: parkedRun });

    const outcome = await processor.process(fakeJob(message({ order: { Invoicer: 5 } })).job);
    expect(outcome.kind).toBe('parked');
    expect(outcome.kind === 'parked' && outcome.parked).toEqual([expect.objectContaining({ place, seq: 5 })]);
    expect(ran()).toEqual(['Invoicer', 'Mailer']);

    const failing = processorWith(routeOf('Invoicer', 'Mailer'), { Invoicer: parkedRun, Mailer: new Error('x') });
    await expect(failing.processor.process(fakeJob(message()).job)).rejects.toBeInstanceOf(OutboxHandlersError);
  });

  it('promotes the successor a handled (or duplicate) run names, and a failed promotion fails nothing', async () => {
    const { processor, promote } = processorWith(routeOf('Invoicer', 'Mailer'), {
      Invoicer: { kind: 'handled', successor: NEXT },
      Mailer: { kind: 'duplicate', successor: ID },
    });
    promote.mockRejectedValueOnce(new Error('Redis down'));

    expect(await processor.process(fakeJob(message()).job)).toEqual({ kind: 'done' });
    expect(promote.mock.calls.map((call) => call[0])).toEqual([NEXT, ID]);
  });

  it('skips handlers an operator discarded', async () => {
    const progress = { failures: { Invoicer: failure('card declined', 5) } };
    const { processor, ran } = processorWith(routeOf('Invoicer', 'Mailer'));
    const { job } = fakeJob(message({ discarded: ['Invoicer'] }), { progress });

    expect(await processor.process(job)).toEqual({ kind: 'done' });
    expect(ran()).toEqual(['Mailer']);
  });

  describe('retryOnly', () => {
    const progress = () => ({ failures: { Invoicer: failure('card declined', 5), Mailer: failure('SMTP down', 5) } });

    it('runs only those handlers and keeps the message a dead letter while others still fail', async () => {
      const { processor, ran } = processorWith(routeOf('Invoicer', 'Mailer'));
      const { job, record } = fakeJob(message({ retryOnly: ['Invoicer'] }), { progress: progress() });

      const error = await rejection(processor.process(job));
      expect(ran()).toEqual(['Invoicer']);
      expect(error).toBeInstanceOf(UnrecoverableError);
      expect((error as Error).message).toContain('Mailer still failed before');
      // The retried handler's success is recorded; the other's failure stays.
      expect(Object.keys(record().failures)).toEqual(['Mailer']);
    });

    it('completes once no other handler still fails (here: the other one was discarded)', async () => {
      const { processor, ran } = processorWith(routeOf('Invoicer', 'Mailer'));
      const { job } = fakeJob(message({ retryOnly: ['Invoicer'], discarded: ['Mailer'] }), { progress: progress() });

      expect(await processor.process(job)).toEqual({ kind: 'done' });
      expect(ran()).toEqual(['Invoicer']);
    });

    it('lets a retried handler that fails again be retried as usual', async () => {
      const { processor } = processorWith(routeOf('Invoicer', 'Mailer'), { Invoicer: new Error('still declined') });
      const { job } = fakeJob(message({ retryOnly: ['Invoicer'] }), { progress: progress() });

      await expect(processor.process(job)).rejects.toBeInstanceOf(OutboxHandlersError);
    });
  });

  describe('a message that can never be handled fails without retry', () => {
    it('an unreadable payload, recorded under the message itself', async () => {
      const { processor, ran } = processorWith(routeOf('Invoicer'));
      const { job, record } = fakeJob(message({ payload: '{"orderId":' }));

      const error = await rejection(processor.process(job));
      expect(error).toBeInstanceOf(UnrecoverableError);
      expect((error as Error).message).toMatch(new RegExp(`not valid JSON.*\\(message ${ID}; not retried\\)\\.$`));
      expect(ran()).toEqual([]);
      expect(Object.keys(record().failures)).toEqual(['(message)']);
      expect(record().failures['(message)'].error).toContain('not valid JSON');
    });

    it.each([
      ['no data', undefined],
      ['no headers', { type: TYPE, payload: '{}' }],
      ['a message id that is not one', { ...message(), headers: { ...message().headers, messageId: 'job:1' } }],
      ['a payload that is not text', { ...message(), payload: { orderId: 'o1' } }],
    ])('a job that is not an outbox message (%s)', async (_, data) => {
      const { processor, ran } = processorWith(routeOf('Invoicer'));

      const { job, updates } = fakeJob(data);
      const error = await rejection(processor.process(job));

      expect(error).toBeInstanceOf(UnrecoverableError);
      expect((error as Error).message).toContain(`Job ${ID} is not an outbox message`);
      expect(ran()).toEqual([]);
      expect(updates).toEqual([]);
    });

    it('a type this process does not know, on a job that does not say which handlers it needs', async () => {
      const { processor } = processorWith(routeOf('Invoicer'));
      const error = await rejection(processor.process(fakeJob(message({ type: 'spec.stranger.v1' })).job));

      expect(error).toBeInstanceOf(UnrecoverableError);
      expect((error as Error).message).toContain('Unknown event type "spec.stranger.v1"');
    });
  });

  it('hands back a message written at a version newer than the class, naming the versions', async () => {
    const { processor, ran } = processorWith(routeOf('Invoicer', 'Mailer'));
    const headers = { ...message().headers, version: 3 };
    const { job, updates } = fakeJob(message({ headers, discarded: ['Mailer'] }));

    const outcome = await processor.process(job);
    expect(outcome).toMatchObject({ kind: 'waiting-for-handlers', missing: ['Invoicer'] });
    const ahead = outcome.kind === 'waiting-for-handlers' ? outcome.versionAhead : undefined;
    expect(ahead).toBeInstanceOf(OutboxVersionAheadError);
    expect(ahead).toMatchObject({ type: TYPE, storedVersion: 3, knownVersion: 1 });
    expect(ran()).toEqual([]);
    expect(updates).toEqual([]);
  });
});
