/**
 * Names the outbox's metrics and spans use, in one place: the README's tables are made from these.
 * Span attributes follow the OpenTelemetry messaging conventions; metric attributes are the
 * outbox's own (`outbox.*`), short enough to be Prometheus labels.
 */

/** The instrumentation scope of every meter and tracer the library creates. */
export const SCOPE = 'nest-outbox';

/** `messaging.system` of every span: not one of the systems the conventions list, so our own name. */
export const MESSAGING_SYSTEM = 'nest-outbox';

export const METRIC = {
  written: 'outbox.messages.written',
  dispatched: 'outbox.messages.dispatched',
  unrouted: 'outbox.messages.unrouted',
  enqueueFailed: 'outbox.relay.enqueue.failures',
  handled: 'outbox.messages.handled',
  failed: 'outbox.messages.failed',
  deadLettered: 'outbox.messages.dead_lettered',
  handlerDuration: 'outbox.handler.duration',
  endToEnd: 'outbox.message.end_to_end.duration',
  oldestPendingAge: 'outbox.pending.oldest_age',
  pending: 'outbox.pending.messages',
  stuck: 'outbox.pending.stuck',
  queueJobs: 'outbox.queue.jobs',
} as const;

/** Metric attributes. */
export const LABEL = {
  /** The service whose process records the point (producer for written/dispatched, consumer for handled). */
  service: 'outbox.service',
  /** The consuming service a message was routed to. */
  consumer: 'outbox.consumer',
  type: 'outbox.message.type',
  handler: 'outbox.handler',
  /** Why a dead letter was given up on, or why an enqueue failed. */
  reason: 'outbox.reason',
  /** Of a handler run: `handled` or `failed`. */
  outcome: 'outbox.outcome',
  /** Of a queued job: `waiting`, `active`, `delayed`, `dead_letter`. */
  state: 'outbox.job.state',
} as const;

/** Span attributes (OpenTelemetry messaging conventions, plus the outbox's own). */
export const SPAN = {
  system: 'messaging.system',
  operationType: 'messaging.operation.type',
  operationName: 'messaging.operation.name',
  destination: 'messaging.destination.name',
  messageId: 'messaging.message.id',
  conversationId: 'messaging.message.conversation_id',
  consumerGroup: 'messaging.consumer.group.name',
  type: 'outbox.message.type',
  handler: 'outbox.handler',
  source: 'outbox.source',
  attempt: 'outbox.attempt',
  outcome: 'outbox.outcome',
} as const;
