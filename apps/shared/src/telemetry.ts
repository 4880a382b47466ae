import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { HttpInstrumentation } from '@opentelemetry/instrumentation-http';
import { NodeSDK } from '@opentelemetry/sdk-node';
import type { SpanProcessor } from '@opentelemetry/sdk-trace';

/** The OpenTelemetry SDK of one example process, and the Prometheus reader its `/metrics` route serves. */
export interface ServiceTelemetry {
  prometheus: PrometheusExporter;
  shutdown(): Promise<void>;
}

export interface TelemetryOptions {
  /**
   * Where spans go. Default: OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` (or `OTEL_TRACES_EXPORTER`) is
   * set, else nowhere (no tracer is registered, and the outbox makes no spans).
   */
  spanProcessors?: SpanProcessor[];
}

/**
 * Starts the OpenTelemetry Node SDK for an example service. The outbox library only uses
 * `@opentelemetry/api`; this is the application's side:
 *
 * - metrics: a Prometheus exporter without a server of its own — the app serves it at `GET /metrics`;
 * - spans: the HTTP server instrumentation, so a request's span is the parent of the outbox spans;
 * - W3C trace context propagation and an AsyncLocalStorage context manager (the SDK's defaults).
 *
 * Call it before the Nest application is created: the outbox creates its instruments when its
 * module is built, and the HTTP instrumentation must be on before Express loads `http`.
 */
export function startTelemetry(service: string, options: TelemetryOptions = {}): ServiceTelemetry {
  const prometheus = new PrometheusExporter({ preventServerStart: true });
  const exportsSpans = Boolean(process.env.OTEL_EXPORTER_OTLP_ENDPOINT || process.env.OTEL_TRACES_EXPORTER);
  const sdk = new NodeSDK({
    serviceName: service,
    metricReaders: [prometheus],
    // An empty list registers no tracer: without a span exporter there is nothing to record.
    ...(options.spanProcessors
      ? { spanProcessors: options.spanProcessors }
      : exportsSpans
        ? {}
        : { spanProcessors: [] }),
    // No OTel logs from this app; without this the SDK would set up an OTLP log exporter.
    logRecordProcessors: [],
    instrumentations: [new HttpInstrumentation()],
  });
  sdk.start();
  return { prometheus, shutdown: () => sdk.shutdown() };
}
