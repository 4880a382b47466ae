/** Headers stored with every message and handed to handlers through `currentMessage()`. */
export interface OutboxHeaders {
  messageId: string;
  /** Shared by every message of one business flow; a handler's messages inherit it. */
  correlationId: string;
  /** The message whose handler raised this one; absent for messages raised outside a handler. */
  causationId?: string;
  /** ISO-8601 time the event was captured. */
  occurredAt: string;
  /** The version of the event class that wrote the payload (`@OutboxEvent({ version })`); absent means 1. */
  version?: number;
  /**
   * Trace context of the code that wrote the message, as the registered OpenTelemetry propagators
   * write it (W3C: `traceparent`, `tracestate`); absent when no span was active. Handlers run under it.
   */
  trace?: Record<string, string>;
  /** Application headers given to `publish()`; string values only. */
  custom?: Record<string, string>;
}
