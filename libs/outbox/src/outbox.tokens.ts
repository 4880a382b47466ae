/** Every injection token of the library, public and internal, in one place. */

/** The resolved options (internal: stages read them; apps configure through `forRoot`). */
export const OUTBOX_OPTIONS = Symbol('nest-outbox:options');
/** The options as `forRootAsync` produced them, before validation (internal). */
export const OUTBOX_RAW_OPTIONS = Symbol('nest-outbox:raw-options');
/** Builds outbox rows from events (internal: shared by capture and `OutboxService`). */
export const OUTBOX_ROW_FACTORY = Symbol('nest-outbox:row-factory');
/** The host's `SchedulerRegistry` when it has one, else a private one (internal). */
export const OUTBOX_SCHEDULER = Symbol('nest-outbox:scheduler');
/** The (type, handler) pairs of this application's `@EventsHandler`s, read when called (internal). */
export const OUTBOX_LOCAL_HANDLERS = Symbol('nest-outbox:local-handlers');
/** Public: the outbox's BullMQ `Queue`, connected on first use; inject it with `@InjectOutboxQueue()`. */
export const OUTBOX_QUEUE = Symbol('nest-outbox:queue');
