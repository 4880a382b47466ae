import 'reflect-metadata';
import { OutboxSetupError } from '../outbox.errors.js';
import { invalidEventTypeName } from '../outbox.messages.js';

const EVENT_TYPE = Symbol('nest-outbox:event-type');

/** The constructor of an event class; events are plain classes. */
export type EventClass<T extends object = object> = abstract new (...args: never[]) => T;

export interface OutboxEventOptions<T extends object = object> {
  /** Stable type name stored with each message. Keep it when the class is renamed. */
  name: string;
  /**
   * Turns a stored payload back into an event. Without it the worker creates an instance of the
   * class and copies the payload's fields onto it (dates stay ISO strings).
   */
  revive?: (payload: Record<string, unknown>) => T;
}

interface EventTypeMetadata {
  name: string;
  revive?: (payload: Record<string, unknown>) => object;
}

const TYPE_NAME = /^[A-Za-z0-9_.\-/@]{1,200}$/;

/**
 * Gives an event class a stable type name (default: the class name), so rows written before a
 * rename or by another deploy still find their class.
 *
 * @example @OutboxEvent('orders.order-placed.v1') export class OrderPlaced { ... }
 */
export function OutboxEvent<T extends object>(nameOrOptions: string | OutboxEventOptions<T>) {
  const options = typeof nameOrOptions === 'string' ? { name: nameOrOptions } : nameOrOptions;
  if (!TYPE_NAME.test(options.name)) {
    throw new OutboxSetupError(invalidEventTypeName(options.name));
  }
  return (target: EventClass<T>): void => {
    Reflect.defineMetadata(EVENT_TYPE, options satisfies EventTypeMetadata, target);
  };
}

export function eventTypeOf(eventClass: Function): string {
  const meta = Reflect.getOwnMetadata(EVENT_TYPE, eventClass) as EventTypeMetadata | undefined;
  return meta?.name ?? eventClass.name;
}

export function reviverOf(eventClass: Function): EventTypeMetadata['revive'] {
  return (Reflect.getOwnMetadata(EVENT_TYPE, eventClass) as EventTypeMetadata | undefined)?.revive;
}
