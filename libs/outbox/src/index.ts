export { OutboxModule } from './outbox.module.js';
export type {
  OutboxModuleOptions,
  OutboxModuleAsyncOptions,
  OutboxOptionsFactory,
  OutboxRelayOptions,
  OutboxWorkerOptions,
  OutboxTableNames,
  OutboxRetentionOptions,
  ResolvedOutboxOptions,
} from './outbox.options.js';
export { OUTBOX_OPTIONS, resolveOutboxOptions } from './outbox.options.js';
export { OutboxQueue } from './outbox.queue.js';
export { OUTBOX_QUEUE } from './outbox.tokens.js';
export {
  OutboxError,
  OutboxOptionsError,
  OutboxSetupError,
  OutboxPayloadError,
  OutboxMessageError,
  OutboxHandlerError,
} from './outbox.errors.js';
export { OutboxEvent, eventTypeOf, type OutboxEventOptions, type EventClass } from './message/event-type.js';
export type { OutboxHeaders, OutboxJobData } from './message/message-headers.js';
export { currentMessage, type MessageContext } from './message/message.context.js';
export { OutboxMessage, InboxMessage } from './message/outbox-message.entity.js';
export { outboxEntities } from './message/outbox.entities.js';
export { outboxMigration } from './message/outbox.migration.js';
export { outboxSchemaSql, dropOutboxSchemaSql } from './message/outbox.schema.js';
export { OutboxService } from './capture/outbox.service.js';
export type { PublishOptions } from './capture/outbox-row.factory.js';
export { OutboxMonitor, type OutboxSnapshot } from './ops/outbox.monitor.js';
export { OutboxDeadLetters, OutboxDeadLetterNotFoundError } from './ops/dead-letters.service.js';
export type { DeadLetter, DeadLetterFilter, DeadLetterQuery } from './ops/dead-letter.js';
export { OutboxRetention, type RetentionResult } from './ops/retention.service.js';
export { OutboxLifecycle } from './outbox.lifecycle.js';
