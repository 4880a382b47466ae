import 'reflect-metadata';
import { OutboxSetupError } from '../outbox.errors.js';
import { invalidEventTypeName, invalidEventVersion, upcasterMissing, upcasterUnexpected } from '../outbox.messages.js';

const EVENT_TYPE = Symbol('nest-outbox:event-type');

/** The constructor of an event class; events are plain classes. */
export type EventClass<T extends object = object> = abstract new (...args: never[]) => T;

/** A stored payload as plain JSON data. */
export type EventPayload = Record<string, unknown>;

/** Lifts a payload written at version `n` to version `n + 1`; plain JSON in, plain JSON out. */
export type EventUpcaster = (payload: EventPayload) => EventPayload;

export interface OutboxEventOptions<T extends object = object> {
  /** Stable type name stored with each message. Keep it when the class is renamed or versioned. */
  name: string;
  /**
   * The version of the payload this class writes and reads; default 1. Raise it when a field is
   * renamed, removed or changes meaning, and add the upcaster from the previous version.
   */
  version?: number;
  /**
   * One function per older version, keyed by the version it reads: `{ 1: (p) => v2Payload, 2: (p) => v3Payload }`.
   * A message written at an older version is lifted step by step to `version`, then revived as usual.
   */
  upcast?: Record<number, EventUpcaster>;
  /**
   * Turns a stored payload (at `version`, after upcasting) back into an event. Without it the
   * worker creates an instance of the class and copies the payload's fields onto it (dates stay ISO strings).
   */
  revive?: (payload: EventPayload) => T;
}

/** What `@OutboxEvent` records on a class, with defaults filled in. */
export interface EventTypeMetadata {
  name: string;
  version: number;
  upcast: Readonly<Record<number, EventUpcaster>>;
  revive?: (payload: EventPayload) => object;
}

const TYPE_NAME = /^[A-Za-z0-9_.\-/@]{1,200}$/;
const MAX_VERSION = 10_000;

/**
 * Gives an event class a stable type name (default: the class name), so rows written before a
 * rename or by another deploy still find their class, and optionally a version with upcasters.
 *
 * @example @OutboxEvent('orders.order-placed') export class OrderPlaced { ... }
 * @example @OutboxEvent({ name: 'orders.order-placed', version: 2, upcast: { 1: (p) => ({ ...p, currency: 'EUR' }) } })
 */
export function OutboxEvent<T extends object>(nameOrOptions: string | OutboxEventOptions<T>) {
  const metadata = checkedMetadata(typeof nameOrOptions === 'string' ? { name: nameOrOptions } : nameOrOptions);
  return (target: EventClass<T>): void => {
    Reflect.defineMetadata(EVENT_TYPE, metadata, target);
  };
}

/** Everything wrong with a declaration is found here, at decoration time, not when the first old message arrives. */
function checkedMetadata<T extends object>(options: OutboxEventOptions<T>): EventTypeMetadata {
  const { name, version = 1, upcast = {}, revive } = options;
  if (typeof name !== 'string' || !TYPE_NAME.test(name)) throw new OutboxSetupError(invalidEventTypeName(name));
  if (!Number.isInteger(version) || version < 1 || version > MAX_VERSION) {
    throw new OutboxSetupError(invalidEventVersion(name, version));
  }
  for (const key of Object.keys(upcast)) {
    const from = Number(key);
    if (!Number.isInteger(from) || from < 1 || from >= version) {
      throw new OutboxSetupError(upcasterUnexpected(name, key, version));
    }
  }
  for (let from = 1; from < version; from++) {
    if (typeof upcast[from] !== 'function') throw new OutboxSetupError(upcasterMissing(name, from, version));
  }
  return { name, version, upcast: { ...upcast }, revive: revive as EventTypeMetadata['revive'] };
}

const UNDECORATED = new WeakMap<Function, EventTypeMetadata>();

/** The class's declaration; an undecorated class is named after itself, at version 1. */
export function eventMetadataOf(eventClass: Function): EventTypeMetadata {
  const declared = Reflect.getOwnMetadata(EVENT_TYPE, eventClass) as EventTypeMetadata | undefined;
  if (declared) return declared;
  let implicit = UNDECORATED.get(eventClass);
  if (!implicit) {
    implicit = { name: eventClass.name, version: 1, upcast: {} };
    UNDECORATED.set(eventClass, implicit);
  }
  return implicit;
}

export function eventTypeOf(eventClass: Function): string {
  return eventMetadataOf(eventClass).name;
}
