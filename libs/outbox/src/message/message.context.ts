import { AsyncLocalStorage } from 'node:async_hooks';
import type { OutboxHeaders } from './message-headers.js';

/** The message being handled, for as long as its handler runs. */
export interface MessageContext {
  headers: OutboxHeaders;
  type: string;
  handler: string;
  attempt: number;
}

const storage = new AsyncLocalStorage<MessageContext>();

export function runInMessageContext<T>(context: MessageContext, fn: () => T): T {
  return storage.run(context, fn);
}

/**
 * The message whose handler is running now, or `undefined` outside a handler. Events raised
 * while it is set inherit its correlation id and name it as their cause.
 */
export function currentMessage(): Readonly<MessageContext> | undefined {
  return storage.getStore();
}
