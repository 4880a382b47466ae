/** nest-outbox: the public API. Anything not exported here is internal and may change. */

export { OutboxModule } from './outbox.module.js';
export type {
  OutboxModuleOptions,
  OutboxModuleAsyncOptions,
  OutboxOptionsFactory,
  OutboxRelayOptions,
  OutboxWorkerOptions,
  OutboxTableNames,
  OutboxRetentionOptions,
  OutboxRedisCluster,
} from './options/outbox-options.interface.js';
export { OUTBOX_QUEUE } from './outbox.tokens.js';
export { InjectOutboxQueue } from './inject-outbox-queue.decorator.js';
export {
  OutboxError,
  OutboxOptionsError,
  OutboxSetupError,
  OutboxPayloadError,
  OutboxMessageError,
  OutboxVersionAheadError,
  OutboxHandlerError,
  OutboxHandlersError,
  OutboxArgumentError,
  OutboxDeadLetterNotFoundError,
  OutboxClosedError,
  OutboxTimeoutError,
} from './outbox.errors.js';

// Events and messages
export {
  OutboxEvent,
  eventTypeOf,
  type OutboxEventOptions,
  type EventClass,
  type EventPayload,
  type EventUpcaster,
} from './message/event-type.js';
export type { OutboxHeaders } from './message/message-headers.js';
export type { OutboxJobData } from './routing/job-data.js';
export { OutboxOrdered } from './consume/outbox-ordered.decorator.js';
export { currentMessage, type MessageContext } from './message/message.context.js';
export { OutboxService } from './capture/outbox.service.js';
export type { PublishOptions } from './capture/outbox-row.factory.js';

// Storage
export { OutboxMessage, InboxMessage } from './store/outbox-message.entity.js';
export { outboxEntities } from './store/outbox.entities.js';
export { outboxMigrations } from './store/outbox.migration.js';
export { outboxSchemaSql, dropOutboxSchemaSql } from './store/outbox.schema.js';

// Operations
export {
  OutboxMonitor,
  type OutboxSnapshot,
  type QueueCounts,
  type OutboxBacklog,
  type RelayActivity,
  type MessageTrace,
} from './ops/outbox.monitor.js';
export type { RelayCounters, WorkerCounters } from './telemetry/process-counters.js';
export { OutboxDeadLetters, DeadLetterQueue, type HandlerChoice } from './ops/outbox-dead-letters.js';
export type {
  DeadLetter,
  DeadLetterFilter,
  DeadLetterQuery,
  DeadLetterReason,
  FailedHandler,
} from './ops/dead-letter.js';
export { OutboxReplay, type ReplayRequest, type ReplayResult } from './ops/outbox-replay.js';
export { OutboxOrdering, type HeldKey, type KeyRef } from './ops/outbox-ordering.js';
export { OutboxSubscriptions, type ServiceSubscription, type WaitingForHandlers } from './ops/outbox-subscriptions.js';
export type { LiveProcess } from './routing/subscription.registry.js';
export { OutboxRetention, type RetentionResult } from './ops/outbox-retention.js';
