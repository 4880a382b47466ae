import { OutboxMessageError, OutboxPayloadError, describe } from '../outbox.errors.js';
import { eventTypeOf, reviverOf } from './event-type.js';

const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

/** JSON text of an event's own fields; throws before anything is written when it cannot be stored. */
export function serialiseEvent(event: object, maxBytes: number): string {
  if (event === null || typeof event !== 'object') {
    throw new OutboxPayloadError(`An outbox event must be an object (an instance of an event class), got ${event === null ? 'null' : typeof event}.`);
  }
  const type = eventTypeOf(event.constructor);
  let text: string;
  try {
    text = JSON.stringify(event);
  } catch (error) {
    throw new OutboxPayloadError(
      `Event ${type} cannot be serialised to JSON (${describe(error)}). ` +
        'Use plain data in events (strings, numbers, booleans, arrays, objects; no BigInt, no cycles). Nothing was written.',
      { cause: error },
    );
  }
  if (text === undefined || text[0] !== '{') {
    throw new OutboxPayloadError(`Event ${type} must serialise to a JSON object, got ${text === undefined ? 'nothing' : text.slice(0, 40)}. Nothing was written.`);
  }
  const bytes = Buffer.byteLength(text);
  if (bytes > maxBytes) {
    throw new OutboxPayloadError(
      `Event ${type} is ${bytes} bytes of JSON, over the ${maxBytes}-byte limit (option maxPayloadBytes). ` +
        'Store large data elsewhere and put its reference in the event. Nothing was written.',
    );
  }
  return text;
}

/**
 * Parses stored JSON without ever assigning to `__proto__` or `constructor`: such keys make the
 * message unreadable rather than reaching an object's prototype.
 */
export function parsePayload(type: string, text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text, (key, v: unknown) => {
      if (FORBIDDEN_KEYS.has(key)) throw new ForbiddenKey(key);
      return v;
    });
  } catch (error) {
    const reason = error instanceof ForbiddenKey ? `it carries the forbidden key "${error.key}"` : `it is not valid JSON (${describe(error)})`;
    throw new OutboxMessageError(`Payload of ${type} cannot be read: ${reason}.`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new OutboxMessageError(`Payload of ${type} cannot be read: expected a JSON object.`);
  }
  return value as Record<string, unknown>;
}

/** A real instance of the event class, with the payload's fields, built without running user code but `revive`. */
export function rebuildEvent(eventClass: Function, type: string, payloadText: string): object {
  const payload = parsePayload(type, payloadText);
  const revive = reviverOf(eventClass);
  if (revive) {
    try {
      return revive(payload);
    } catch (error) {
      throw new OutboxMessageError(`Payload of ${type} was rejected by its revive function: ${describe(error)}.`);
    }
  }
  const event = Object.create(eventClass.prototype as object) as Record<string, unknown>;
  for (const key of Object.keys(payload)) event[key] = payload[key];
  return event;
}

class ForbiddenKey extends Error {
  constructor(readonly key: string) {
    super(key);
  }
}
