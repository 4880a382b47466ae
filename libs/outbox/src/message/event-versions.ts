import { OutboxMessageError, OutboxVersionAheadError } from '../outbox.errors.js';
import {
  payloadUnreadable,
  storedVersionInvalid,
  upcasterFailed,
  upcasterMissing,
  upcasterNotAnObject,
} from '../outbox.messages.js';
import { errorText } from '../util/error-text.js';
import type { EventPayload, EventTypeMetadata } from './event-type.js';

/**
 * The version a message was written at: `headers.version`, absent for version 1 (so rows written
 * before versions existed, and every version-1 row, carry no version at all).
 */
export function storedVersion(type: string, value: unknown): number {
  if (value === undefined || value === null) return 1;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) {
    throw new OutboxMessageError(payloadUnreadable(type, storedVersionInvalid(value)));
  }
  return value;
}

/**
 * The payload at the class's version: a message written at an older version goes through each
 * upcaster in turn (1→2→3); one written at a newer version is not this process's to read.
 * `parse` runs only once the version is known to be readable.
 */
export function upcastPayload(
  metadata: EventTypeMetadata,
  type: string,
  version: unknown,
  parse: () => EventPayload,
): EventPayload {
  const from = storedVersion(type, version);
  if (from > metadata.version) throw new OutboxVersionAheadError(type, from, metadata.version);
  let payload = parse();
  for (let step = from; step < metadata.version; step++) {
    const upcast = metadata.upcast[step];
    // The decorator refuses a gap, so this only guards metadata built some other way.
    if (!upcast) throw new OutboxMessageError(upcasterMissing(metadata.name, step, metadata.version));
    let lifted: unknown;
    try {
      lifted = upcast(payload);
    } catch (error) {
      throw new OutboxMessageError(upcasterFailed(type, step, errorText(error)));
    }
    if (lifted === null || typeof lifted !== 'object' || Array.isArray(lifted)) {
      throw new OutboxMessageError(upcasterNotAnObject(type, step));
    }
    payload = lifted as EventPayload;
  }
  return payload;
}
