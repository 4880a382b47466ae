import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { SpanKind, context, propagation, trace } from '@opentelemetry/api';
import { InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace';
import { startTelemetry } from '../../apps/shared/src/telemetry.js';
import { freshDatabase } from '../support/database.js';
import { migrateOrders, post, startOrdersApp, type OrdersApp } from '../support/orders-app.js';
import { REDIS_URL, removePrefix, uniquePrefix } from '../support/redis.js';
import { waitUntil } from '../support/wait.js';

// The example's own SDK set-up, with spans kept in memory: the real SDK, the real HTTP
// instrumentation, the AsyncLocalStorage context manager and the W3C propagator.
const spans = new InMemorySpanExporter();
const telemetry = startTelemetry('orders', { spanProcessors: [new SimpleSpanProcessor({ exporter: spans })] });
// The HTTP instrumentation patches `http` when it is loaded after the SDK started, as Express loads
// it in the example's own process. Under jest, modules get `http` from jest's module registry,
// which the instrumentation's require hook does not see; `process.getBuiltinModule` is hooked too.
process.getBuiltinModule('node:http');

/** One line per span of a trace, children indented under their parent, siblings in a stable order. */
function render(all: readonly ReadableSpan[], traceId: string): string[] {
  const inTrace = all.filter((span) => span.spanContext().traceId === traceId);
  const children = (parentId: string | undefined) =>
    inTrace
      .filter((span) => span.parentSpanContext?.spanId === parentId)
      .map((span) => ({ span, label: label(span) }))
      .sort((a, b) => a.label.localeCompare(b.label));
  const lines: string[] = [];
  const walk = (parentId: string | undefined, depth: number) => {
    for (const { span, label: text } of children(parentId)) {
      lines.push(`${'  '.repeat(depth)}${text}`);
      walk(span.spanContext().spanId, depth + 1);
    }
  };
  const ids = new Set(inTrace.map((span) => span.spanContext().spanId));
  const roots = inTrace.filter((span) => !span.parentSpanContext || !ids.has(span.parentSpanContext.spanId));
  for (const root of roots) {
    lines.push(label(root));
    walk(root.spanContext().spanId, 1);
  }
  return lines;
}

function label(span: ReadableSpan): string {
  const handler = span.attributes['outbox.handler'];
  return `${span.name} [${SpanKind[span.kind]}]${handler ? ` ${String(handler)}` : ''}`;
}

describe('tracing: one trace from the HTTP request through flush, relay and handlers', () => {
  const prefix = uniquePrefix('trace');
  let service: OrdersApp;

  beforeAll(async () => {
    const databaseUrl = await freshDatabase('telemetry_trace');
    await migrateOrders(databaseUrl);
    service = await startOrdersApp(databaseUrl, { redis: REDIS_URL, prefix }, { telemetry });
  });

  afterAll(async () => {
    await service?.close();
    await removePrefix(prefix);
  });

  it('chains request → create → send/process → create (raised by the handler) → send/process', async () => {
    const order = await post<{ id: string }>(`${service.url}/orders`, { customerId: 'grace', totalCents: 1999 });
    await waitUntil('the order handled', () => service.monitor.isSettled());
    spans.reset();

    // The caller's span travels to the server in `traceparent`, as between two services.
    const tracer = trace.getTracer('test');
    const traceId = await tracer.startActiveSpan('pay order', { kind: SpanKind.CLIENT }, async (span) => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      propagation.inject(context.active(), headers);
      const response = await fetch(`${service.url}/orders/${order.id}/pay`, { method: 'POST', headers });
      expect(response.status).toBe(200);
      span.end();
      return span.spanContext().traceId;
    });
    await waitUntil('the chain handled', () => service.monitor.isSettled());
    await waitUntil('every span ended', () =>
      spans.getFinishedSpans().some((span) => span.attributes['outbox.handler'] === 'SendPointsStatement'),
    );

    expect(render(spans.getFinishedSpans(), traceId)).toEqual([
      'pay order [CLIENT]',
      '  POST [SERVER]',
      '    create orders.order-paid.v1 [PRODUCER]',
      '      process orders [CONSUMER] AwardLoyaltyPoints',
      '        create loyalty.points-awarded.v1 [PRODUCER]',
      '          process orders [CONSUMER] SendPointsStatement',
      '          send orders [CLIENT]',
      '      process orders [CONSUMER] OrderSummaryProjector',
      '      send orders [CLIENT]',
    ]);

    const finished = spans.getFinishedSpans().filter((span) => span.spanContext().traceId === traceId);
    const process = finished.find((span) => span.attributes['outbox.handler'] === 'AwardLoyaltyPoints')!;
    const [paid] = await service.orm.em
      .getConnection()
      .execute(`select id, headers from outbox_message where type = 'orders.order-paid.v1'`);
    const create = finished.find((span) => span.name === 'create orders.order-paid.v1')!;
    expect(process.attributes).toMatchObject({
      'messaging.system': 'nest-outbox',
      'messaging.operation.type': 'process',
      'messaging.operation.name': 'process',
      'messaging.destination.name': 'orders',
      'messaging.consumer.group.name': 'orders',
      'messaging.message.id': paid.id,
      'messaging.message.conversation_id': paid.headers.correlationId,
      'outbox.message.type': 'orders.order-paid.v1',
      'outbox.source': 'orders',
      'outbox.attempt': 1,
      'outbox.outcome': 'handled',
    });
    expect(create.attributes).toMatchObject({ 'messaging.operation.type': 'create', 'messaging.message.id': paid.id });
    // The stored context is the create span's: W3C traceparent, version 00, sampled.
    const { traceId: t, spanId: s } = create.spanContext();
    expect(paid.headers.trace).toEqual({ traceparent: `00-${t}-${s}-01` });
    const send = finished.find((span) => span.name === 'send orders')!;
    expect(send.attributes).toMatchObject({
      'messaging.operation.type': 'send',
      'messaging.destination.name': 'orders',
    });
  });

  it('stores no trace context for a message written outside any span', async () => {
    const em = service.orm.em.fork();
    const before = spans.getFinishedSpans().length;
    const { Order } = await import('../../apps/orders/src/orders/order.entity.js');
    await em.persist(new Order('no-span', 100)).flush();
    const [row] = await em
      .getConnection()
      .execute(`select headers from outbox_message where payload->>'customerId' = 'no-span'`);
    expect(row.headers.trace).toBeUndefined();
    expect(
      spans
        .getFinishedSpans()
        .slice(before)
        .filter((span) => span.name.startsWith('create')),
    ).toEqual([]);
    await waitUntil('handled', () => service.monitor.isSettled());
  });
});
