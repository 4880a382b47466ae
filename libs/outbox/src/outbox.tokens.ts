/** Injection tokens shared by the module and the stages. */
export const OUTBOX_ROW_FACTORY = Symbol('nest-outbox:row-factory');
export const OUTBOX_QUEUE = Symbol('nest-outbox:queue');
/** The ioredis client the queue uses; owned (and closed) by the outbox. */
export const OUTBOX_QUEUE_REDIS = Symbol('nest-outbox:queue-redis');
