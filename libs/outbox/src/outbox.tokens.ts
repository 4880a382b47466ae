/** Injection tokens shared by the module and the stages. */
export const OUTBOX_ROW_FACTORY = Symbol('nest-outbox:row-factory');
/** The outbox's BullMQ `Queue` (connects on first use; closed by the outbox at shutdown). */
export const OUTBOX_QUEUE = Symbol('nest-outbox:queue');
