/** Injection tokens shared by the module and the stages. */
export const OUTBOX_ROW_FACTORY = Symbol('nest-outbox:row-factory');
export const OUTBOX_QUEUE = Symbol('nest-outbox:queue');
