import { Injectable } from '@nestjs/common';
import {
  ROOT_CONTEXT,
  SpanKind,
  SpanStatusCode,
  context,
  propagation,
  trace,
  type Context,
  type Span,
} from '@opentelemetry/api';
import type { OutboxHeaders } from '../message/message-headers.js';
import { redactUrl } from '../util/redact.js';
import { errorText } from '../util/error-text.js';
import { MESSAGING_SYSTEM, SCOPE, SPAN } from './telemetry-names.js';

/** Where handlers run: the consuming service and its BullMQ queue. */
export interface ConsumerPlace {
  service: string;
  queue: string;
}

/** The message a handler runs for, as its span describes it. */
export interface ProcessedMessage {
  type: string;
  headers: OutboxHeaders;
  source: string;
  attempt: number;
}

/** A job about to be added to a queue: its message id and headers. */
export interface SendJob {
  id: string;
  data: { type: string; headers: OutboxHeaders };
}

/** Ends the spans of one `addBulk`. */
export type EndSends = (error?: unknown) => void;

const NO_SENDS: EndSends = () => undefined;

/**
 * The outbox's spans, through the OpenTelemetry API only (the application registers the SDK):
 *
 * - at write, `create <type>` (PRODUCER) under the active span, whose context is stored in the
 *   message's headers (`headers.trace`, filled by the registered propagators: W3C `traceparent`);
 * - at the enqueue (the committing process's, or a relay's), `send <queue>` (CLIENT) per message and
 *   consuming service, under that context;
 * - at the consumer, `process <queue>` (CONSUMER) per handler run, under that context: the events
 *   the handler raises are written inside it, so a chain of events is one trace.
 *
 * Without an active span at write the message carries no trace context (and without an SDK there
 * never is one); the relay then makes no span, and each handler run starts a trace of its own.
 */
@Injectable()
export class OutboxTracing {
  private readonly tracer = trace.getTracer(SCOPE);

  /**
   * The trace context to store with a message written now: the active span's, through a
   * `create` span when that one is recorded. `undefined` (nothing stored) without an active span.
   */
  creationContext(type: string, messageId: string): Record<string, string> | undefined {
    const active = context.active();
    const parent = trace.getSpan(active);
    if (!parent) return undefined;
    let creation: Context = active;
    if (parent.isRecording()) {
      const span = this.tracer.startSpan(`create ${type}`, { kind: SpanKind.PRODUCER }, active);
      if (span.isRecording()) {
        span.setAttributes({
          [SPAN.system]: MESSAGING_SYSTEM,
          [SPAN.operationType]: 'create',
          [SPAN.operationName]: 'create',
          [SPAN.messageId]: messageId,
          [SPAN.type]: type,
        });
      }
      span.end();
      creation = trace.setSpan(active, span);
    }
    const carrier: Record<string, string> = {};
    propagation.inject(creation, carrier);
    return Object.keys(carrier).length > 0 ? carrier : undefined;
  }

  /** Starts a `send` span for each job that carries a trace context; the returned function ends them. */
  startSends(queue: string, jobs: readonly SendJob[]): EndSends {
    let spans: Span[] | undefined;
    for (const job of jobs) {
      const carrier = job.data.headers.trace;
      if (!carrier) continue;
      const parent = propagation.extract(ROOT_CONTEXT, carrier);
      const span = this.tracer.startSpan(`send ${queue}`, { kind: SpanKind.CLIENT }, parent);
      if (!span.isRecording()) continue;
      span.setAttributes({
        [SPAN.system]: MESSAGING_SYSTEM,
        [SPAN.operationType]: 'send',
        [SPAN.operationName]: 'send',
        [SPAN.destination]: queue,
        [SPAN.messageId]: job.id,
        [SPAN.type]: job.data.type,
      });
      (spans ??= []).push(span);
    }
    if (!spans) return NO_SENDS;
    const started = spans;
    return (error) => {
      for (const span of started) {
        if (error !== undefined) failed(span, error);
        span.end();
      }
    };
  }

  /**
   * Runs `fn` (one handler run) in a `process` span whose parent is the message's creation
   * context; `outcome` names what the run did (handled, duplicate, parked), a throw marks it failed.
   * A run in a transaction it shares returns before that transaction commits: `committed` then
   * settles when it does, and the span ends with it — failed, if the transaction rolled back (with
   * the reason of the batch: a batchmate's failure, or the COMMIT's).
   */
  async process<T extends { kind: string }>(
    place: ConsumerPlace,
    handler: string,
    message: ProcessedMessage,
    fn: () => Promise<T>,
    committed?: Promise<unknown>,
  ): Promise<T> {
    const carrier = message.headers.trace;
    const parent = carrier ? propagation.extract(ROOT_CONTEXT, carrier) : ROOT_CONTEXT;
    const span = this.tracer.startSpan(`process ${place.queue}`, { kind: SpanKind.CONSUMER }, parent);
    const recording = span.isRecording();
    if (recording) {
      span.setAttributes({
        [SPAN.system]: MESSAGING_SYSTEM,
        [SPAN.operationType]: 'process',
        [SPAN.operationName]: 'process',
        [SPAN.destination]: place.queue,
        [SPAN.consumerGroup]: place.service,
        [SPAN.messageId]: message.headers.messageId,
        [SPAN.conversationId]: message.headers.correlationId,
        [SPAN.type]: message.type,
        [SPAN.handler]: handler,
        [SPAN.source]: message.source,
        [SPAN.attempt]: message.attempt,
      });
    }
    let result: T;
    try {
      result = await context.with(trace.setSpan(parent, span), fn);
    } catch (error) {
      if (recording) {
        span.setAttribute(SPAN.outcome, 'failed');
        failed(span, error);
      }
      span.end();
      throw error;
    }
    if (!committed) {
      if (recording) span.setAttribute(SPAN.outcome, result.kind);
      span.end();
      return result;
    }
    const outcome = result.kind;
    committed.then(
      () => {
        if (recording) span.setAttribute(SPAN.outcome, outcome);
        span.end();
      },
      (error: unknown) => {
        if (recording) {
          span.setAttribute(SPAN.outcome, 'rolled back');
          failed(span, error);
        }
        span.end();
      },
    );
    return result;
  }
}

/** Marks a span failed; the error's text is redacted as in logs (no credentials in URLs). */
function failed(span: Span, error: unknown): void {
  const message = errorText(error);
  if (error instanceof Error) {
    span.recordException({ name: error.name, message, stack: error.stack && redactUrl(error.stack) });
  }
  span.setStatus({ code: SpanStatusCode.ERROR, message });
}
