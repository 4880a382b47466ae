import 'reflect-metadata';
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { INestApplicationContext } from '@nestjs/common';
import { SpanKind, trace } from '@opentelemetry/api';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { PeriodicExportingMetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace';
import { BenchAggregate, handled, ormOf, startBenchApp } from './bench.app.js';
import { dropDatabase, freshBenchDatabase } from './bench-db.js';
import { now } from './harness.js';
import { median } from './measure/stats.js';

/**
 * npm run bench:telemetry — what the outbox's telemetry costs per event, with and without an
 * OpenTelemetry SDK. Each mode runs in its own process (the SDK registers process-wide):
 *
 * - off: no SDK, as an application that does not use OpenTelemetry;
 * - on: the Node SDK with a metric reader and a span processor that record everything (every span
 *   sampled) and export to nowhere, so the figure is the recording, not a network.
 *
 * Figures: the isolated per-event calls the stages make (capture: trace context + written counter;
 * relay: send span + dispatched counter; worker: process span + timers + counters), a flush of
 * 1 aggregate + 1 event (median of 2,000; "on" runs it inside an active request span, as an HTTP
 * instrumentation would), and 2,000 events through relay and worker (wall and CPU per event).
 */

const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
const FLUSHES = 2_000;
const EVENTS = 2_000;
const CALLS = 100_000;

type Mode = 'off' | 'on';

interface Figures {
  mode: Mode;
  captureCallUs: number;
  relayCallUs: number;
  workerCallUs: number;
  flushUs: number;
  flushCpuUs: number;
  pathWallUs: number;
  pathCpuUs: number;
}

// The library's internal classes, from the same built files the package resolves to (one module instance).
interface Metrics {
  enabled: boolean;
  messagesWritten(types: readonly string[]): void;
  messagesDispatched(rows: ReadonlyArray<{ type: string; routedTo: readonly string[] }>): void;
  startTimer(): number;
  handlerRun(type: string, handler: string, result: 'handled', startedAt: number, occurredAt: string): void;
}
interface Tracing {
  creationContext(type: string, messageId: string): Record<string, string> | undefined;
  startSends(queue: string, jobs: readonly object[]): (error?: unknown) => void;
  process<T>(place: object, handler: string, message: object, fn: () => Promise<T>): Promise<T>;
}

async function measure(mode: Mode): Promise<Figures> {
  let sdk: NodeSDK | undefined;
  if (mode === 'on') {
    const nowhere: SpanExporter & PushMetricExporter = {
      export: (_items: unknown, done: (result: { code: 0 }) => void) => done({ code: 0 }),
      shutdown: async () => undefined,
      forceFlush: async () => undefined,
    };
    sdk = new NodeSDK({
      serviceName: 'bench',
      autoDetectResources: false,
      metricReaders: [new PeriodicExportingMetricReader({ exporter: nowhere, exportIntervalMillis: 1000 })],
      spanProcessors: [new BatchSpanProcessor({ exporter: nowhere })],
      logRecordProcessors: [],
    });
    sdk.start();
  }
  const dist = new URL('../../../libs/outbox/dist/telemetry/', import.meta.url);
  const { OutboxMetrics } = await import(new URL('outbox.metrics.js', dist).href);
  const { OutboxTracing } = await import(new URL('outbox.tracing.js', dist).href);
  const databaseUrl = await freshBenchDatabase(ADMIN_URL, `nest_outbox_bench_telemetry_${mode}`);
  const prefix = `bench-telemetry-${mode}-${process.pid}`;
  const tracer = trace.getTracer('bench');
  // As an HTTP server span would be: the request's work runs inside it.
  const inRequest = <T>(fn: () => Promise<T>): Promise<T> =>
    mode === 'on'
      ? tracer.startActiveSpan('request', { kind: SpanKind.SERVER }, (span) => fn().finally(() => span.end()))
      : fn();
  let app: INestApplicationContext | undefined;
  try {
    // 1. The calls the stages make per event, alone.
    app = await startBenchApp({
      databaseUrl,
      poolMax: 10,
      outbox: { service: 'bench', redis: REDIS_URL, prefix, relay: { enabled: false }, worker: { enabled: false } },
    });
    const metrics = app.get<Metrics>(OutboxMetrics);
    const tracing = app.get<Tracing>(OutboxTracing);
    if (metrics.enabled !== (mode === 'on')) throw new Error(`metrics.enabled is ${metrics.enabled} in mode ${mode}`);
    const id = '01920000-0000-7000-8000-000000000000';
    const captureCallUs = await inRequest(async () =>
      perCall(() => {
        tracing.creationContext('bench.something-happened.v1', id);
        metrics.messagesWritten(['bench.something-happened.v1']);
      }),
    );
    const traceHeaders = await inRequest(async () => tracing.creationContext('bench.something-happened.v1', id));
    const headers = {
      messageId: id,
      correlationId: id,
      occurredAt: new Date().toISOString(),
      ...(traceHeaders ? { trace: traceHeaders } : {}),
    };
    const job = { id, data: { type: 'bench.something-happened.v1', headers } };
    const row = { type: 'bench.something-happened.v1', routedTo: ['bench'] };
    const relayCallUs = perCall(() => {
      tracing.startSends('bench', [job])();
      metrics.messagesDispatched([row]);
    });
    const place = { service: 'bench', queue: 'bench' };
    const message = { type: row.type, headers, source: 'bench', attempt: 1 };
    const done = Promise.resolve({ kind: 'handled' });
    const workerRun = async () => {
      const timer = metrics.startTimer();
      await tracing.process(place, 'RecordHandled', message, () => done);
      metrics.handlerRun(row.type, 'RecordHandled', 'handled', timer, headers.occurredAt);
    };
    for (let i = 0; i < CALLS / 10; i++) await workerRun();
    let cpu = process.cpuUsage();
    for (let i = 0; i < CALLS; i++) await workerRun();
    const workerCallUs = cpuUs(cpu) / CALLS;

    // 2. A flush of 1 aggregate + 1 event.
    const orm = ormOf(app);
    const flushes: number[] = [];
    for (let i = 0; i < FLUSHES + 200; i++) {
      if (i === 200) cpu = process.cpuUsage(); // the first 200 warm up
      const em = orm.em.fork();
      const aggregate = BenchAggregate.create(i, 1, Date.now());
      const t0 = now();
      await inRequest(() => em.persist(aggregate).flush());
      if (i >= 200) flushes.push((now() - t0) * 1000);
    }
    const flushCpuUs = cpuUs(cpu) / FLUSHES;
    await app.close();
    app = undefined;

    // 3. Events through relay and worker, in one process: written first, then the clock starts
    //    when the relay and the worker do.
    let count = 0;
    let allHandled!: () => void;
    const finished = new Promise<void>((resolve) => (allHandled = resolve));
    handled.committed = () => {
      if (++count === EVENTS) allHandled();
    };
    app = await startBenchApp({
      databaseUrl,
      poolMax: 10,
      outbox: { service: 'bench', redis: REDIS_URL, prefix, relay: { enabled: false }, worker: { enabled: false } },
    });
    const writer = ormOf(app);
    await writer.em.getConnection().execute('truncate outbox_message, inbox_message');
    for (let i = 0; i < EVENTS; i += 100) {
      const em = writer.em.fork();
      const batch = Array.from({ length: 100 }, (_, n) => BenchAggregate.create(i + n, 1, Date.now()));
      await inRequest(() => em.persist(batch).flush());
    }
    await app.close();
    const started = now();
    cpu = process.cpuUsage();
    app = await startBenchApp({ databaseUrl, poolMax: 10, outbox: { service: 'bench', redis: REDIS_URL, prefix } });
    await finished;
    const pathCpuUs = cpuUs(cpu) / EVENTS;
    const wallMs = now() - started;
    return {
      mode,
      captureCallUs,
      relayCallUs,
      workerCallUs,
      flushUs: median(flushes),
      flushCpuUs,
      pathWallUs: (wallMs * 1000) / EVENTS,
      pathCpuUs,
    };
  } finally {
    await app?.close();
    await sdk?.shutdown();
    await dropDatabase(ADMIN_URL, `nest_outbox_bench_telemetry_${mode}`);
  }
}

/**
 * CPU µs of this process per call of `fn`, after a warm-up. CPU rather than wall time: on a shared
 * machine another process's load stretches the wall clock, not this process's CPU time.
 */
function perCall(fn: () => void): number {
  for (let i = 0; i < CALLS / 10; i++) fn();
  const cpu = process.cpuUsage();
  for (let i = 0; i < CALLS; i++) fn();
  return cpuUs(cpu) / CALLS;
}

function cpuUs(since: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(since);
  return used.user + used.system;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { mode: { type: 'string' } } });
  if (values.mode === 'off' || values.mode === 'on') {
    process.stdout.write(`${JSON.stringify(await measure(values.mode))}\n`);
    return;
  }
  const self = fileURLToPath(import.meta.url);
  const rows: Figures[] = (['off', 'on'] as const).map((mode) => {
    const output = execFileSync(process.execPath, [self, '--mode', mode], { encoding: 'utf8', stdio: 'pipe' });
    return JSON.parse(output.trim().split('\n').pop()!) as Figures;
  });
  const f = (value: number) => value.toFixed(2).padStart(9);
  console.log('µs per event (calls: CPU)  no SDK   with SDK');
  for (const [label, key] of [
    ['capture calls', 'captureCallUs'],
    ['relay calls', 'relayCallUs'],
    ['worker calls', 'workerCallUs'],
    ['flush 1+1, median wall', 'flushUs'],
    ['flush 1+1, CPU', 'flushCpuUs'],
    ['relay+worker wall', 'pathWallUs'],
    ['relay+worker CPU', 'pathCpuUs'],
  ] as const) {
    console.log(`${label.padEnd(25)}${f(rows[0][key])}${f(rows[1][key])}`);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
