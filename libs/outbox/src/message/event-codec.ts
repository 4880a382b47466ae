import { OutboxMessageError, OutboxPayloadError } from '../outbox.errors.js';
import {
  eventNotAJsonObject,
  eventNotAnObject,
  eventNotSerialisable,
  messageTooLarge,
  payloadKeyForbidden,
  payloadRejectedByReviver,
  payloadUnreadable,
} from '../outbox.messages.js';
import { errorText } from '../util/error-text.js';
import { eventTypeOf, reviverOf } from './event-type.js';
import { ForbiddenKey, forbiddenKeyPath, refuseForbiddenKeys } from './forbidden-keys.js';

/**
 * JSON text of an event's own fields; throws before anything is written when it cannot be stored,
 * including when a key at any depth is one a reader must refuse (`__proto__`, `constructor`, `prototype`).
 */
export function serialiseEvent(event: object): string {
  if (event === null || typeof event !== 'object') {
    throw new OutboxPayloadError(eventNotAnObject(event));
  }
  const type = eventTypeOf(event.constructor);
  let text: string;
  try {
    text = JSON.stringify(event, refuseForbiddenKeys);
  } catch (error) {
    if (error instanceof ForbiddenKey) {
      const path = forbiddenKeyPath(event) ?? `payload.${error.key}`;
      throw new OutboxPayloadError(payloadKeyForbidden(type, error.key, path));
    }
    throw new OutboxPayloadError(eventNotSerialisable(type, errorText(error)), { cause: error });
  }
  if (text === undefined || text[0] !== '{') {
    throw new OutboxPayloadError(eventNotAJsonObject(type, text));
  }
  return text;
}

/** A message is its payload plus its headers; both count against `maxPayloadBytes`. */
export function checkMessageSize(type: string, payload: string, headers: string, maxBytes: number): void {
  const bytes = Buffer.byteLength(payload) + Buffer.byteLength(headers);
  if (bytes > maxBytes) throw new OutboxPayloadError(messageTooLarge(type, bytes, maxBytes));
}

/**
 * Parses stored JSON without ever assigning to `__proto__` or `constructor`: such keys make the
 * message unreadable rather than reaching an object's prototype.
 */
export function parsePayload(type: string, text: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(text, (key, v: unknown) => refuseForbiddenKeys(key, v));
  } catch (error) {
    const reason =
      error instanceof ForbiddenKey
        ? `it carries the forbidden key "${error.key}"`
        : `it is not valid JSON (${errorText(error)})`;
    throw new OutboxMessageError(payloadUnreadable(type, reason));
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new OutboxMessageError(payloadUnreadable(type, 'expected a JSON object'));
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
      throw new OutboxMessageError(payloadRejectedByReviver(type, errorText(error)));
    }
  }
  const event = Object.create(eventClass.prototype as object) as Record<string, unknown>;
  for (const key of Object.keys(payload)) event[key] = payload[key];
  return event;
}
