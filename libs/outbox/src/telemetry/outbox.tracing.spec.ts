import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { SpanStatusCode, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, TracerProvider } from '@opentelemetry/sdk-trace';
import { settlement as pending } from '../util/settlement.js';
import { OutboxTracing } from './outbox.tracing.js';

const exporter = new InMemorySpanExporter();
const place = { service: 'billing', queue: 'outbox:billing' };
const message = {
  type: 'OrderPlaced',
  source: 'orders',
  attempt: 1,
  headers: { messageId: 'm-1', correlationId: 'c-1', occurredAt: new Date(0).toISOString() },
} as Parameters<OutboxTracing['process']>[2];

const ended = () => exporter.getFinishedSpans();

beforeAll(() => {
  trace.setGlobalTracerProvider(new TracerProvider({ spanProcessors: [new SimpleSpanProcessor({ exporter })] }));
});
afterAll(() => trace.disable());
beforeEach(() => exporter.reset());

describe('OutboxTracing.process: the span of a handler run', () => {
  it('ends when the run returns, for a run in a transaction of its own', async () => {
    await new OutboxTracing().process(place, 'Bill', message, async () => ({ kind: 'handled' }));
    expect(ended().map((span) => span.attributes['outbox.outcome'])).toEqual(['handled']);
  });

  it('in a shared transaction, stays open after the run returns and ends when the transaction commits', async () => {
    const committed = pending();
    const outcome = await new OutboxTracing().process(
      place,
      'Bill',
      message,
      async () => ({ kind: 'handled' }),
      committed.promise,
    );
    expect(outcome).toEqual({ kind: 'handled' });
    expect(ended()).toHaveLength(0);
    committed.resolve();
    await committed.promise;
    expect(ended().map((span) => [span.attributes['outbox.outcome'], span.status.code])).toEqual([
      ['handled', SpanStatusCode.UNSET],
    ]);
  });

  it('in a shared transaction that rolls back, ends failed with the reason', async () => {
    const committed = pending();
    await new OutboxTracing().process(place, 'Bill', message, async () => ({ kind: 'handled' }), committed.promise);
    committed.reject(new Error('a batchmate failed'));
    await committed.promise.catch(() => undefined);
    const [span] = ended();
    expect([span.attributes['outbox.outcome'], span.status]).toEqual([
      'rolled back',
      { code: SpanStatusCode.ERROR, message: 'a batchmate failed' },
    ]);
  });

  it('a run that throws ends failed at once, whatever its transaction does next', async () => {
    const committed = pending();
    const run = new OutboxTracing().process(
      place,
      'Bill',
      message,
      async () => {
        throw new Error('handler broke');
      },
      committed.promise,
    );
    await expect(run).rejects.toThrow('handler broke');
    expect(ended().map((span) => span.attributes['outbox.outcome'])).toEqual(['failed']);
  });
});
