import { checkMessageSize, serialiseEvent } from '../message/event-codec.js';
import { eventMetadataOf } from '../message/event-type.js';
import { currentMessage } from '../message/message.context.js';
import type { OutboxHeaders } from '../message/message-headers.js';
import { newMessageId } from '../message/message-id.js';
import { OutboxPayloadError } from '../outbox.errors.js';
import { headerNameForbidden, headerNotAString, headersNotAnObject, invalidDelay } from '../outbox.messages.js';
import type { OutboxRow } from '../store/outbox-row.js';
import type { OutboxTracing } from '../telemetry/outbox.tracing.js';
import { isoTime } from '../util/iso-time.js';

export interface PublishOptions {
  /**
   * Deliver no sooner than this many ms after `publish()` was called (not after the commit: a
   * transaction that runs long eats into the delay). A delayed row is a relay's to send, and the
   * relay looks for due rows on every commit that leaves it rows and every `relay.intervalMs`, so
   * a delayed message is handed over at most about one interval after it is due.
   */
  delay?: number;
  /**
   * Ordering key: ordered handlers handle the messages of one key in commit order. An aggregate's
   * events have `<aggregate type>:<id>`; a published message has none unless given one.
   */
  key?: string;
  /** Application headers; values must be strings. They count against `maxPayloadBytes`. */
  headers?: Record<string, string>;
}

export interface RowOrigin {
  aggregateType: string | null;
  aggregateId: string | null;
  /** Messages raised together outside a handler share one correlation id. */
  correlationId?: string;
}

/** Turns one event into one outbox row: id, type name, JSON payload, headers. */
export class OutboxRowFactory {
  constructor(
    private readonly maxPayloadBytes: number,
    private readonly tracing: OutboxTracing,
  ) {}

  create(event: object, origin: RowOrigin, options: PublishOptions = {}): OutboxRow {
    const payload = serialiseEvent(event);
    const { name: type, version } = eventMetadataOf(event.constructor);
    const id = newMessageId();
    const now = new Date();
    const parent = currentMessage();
    // The active span's context (none without one): handlers of this message run under it.
    const trace = this.tracing.creationContext(type, id);
    const headers: OutboxHeaders = {
      messageId: id,
      correlationId: parent?.headers.correlationId ?? origin.correlationId ?? id,
      ...(parent ? { causationId: parent.headers.messageId } : {}),
      occurredAt: isoTime(now),
      // Absent at version 1, so a version-1 row reads the same to consumers built before versions.
      ...(version > 1 ? { version } : {}),
      ...(trace ? { trace } : {}),
      ...(options.headers ? { custom: checkHeaders(type, options.headers) } : {}),
    };
    const headersText = JSON.stringify(headers);
    checkMessageSize(type, payload, headersText, this.maxPayloadBytes);
    return {
      id,
      type,
      payload,
      headers: headersText,
      aggregateType: origin.aggregateType,
      aggregateId: origin.aggregateId,
      key:
        options.key ??
        (origin.aggregateType && origin.aggregateId ? `${origin.aggregateType}:${origin.aggregateId}` : null),
      occurredAt: now,
      availableAt: options.delay ? new Date(now.getTime() + checkDelay(type, options.delay)) : null,
    };
  }
}

const FORBIDDEN_HEADER_NAMES = new Set(['__proto__', 'constructor', 'prototype']);

function checkHeaders(type: string, headers: Record<string, unknown>): Record<string, string> {
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) {
    throw new OutboxPayloadError(headersNotAnObject(type));
  }
  const clean: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (FORBIDDEN_HEADER_NAMES.has(name)) throw new OutboxPayloadError(headerNameForbidden(type, name));
    if (typeof value !== 'string') throw new OutboxPayloadError(headerNotAString(type, name, value));
    clean[name] = value;
  }
  return clean;
}

function checkDelay(type: string, delay: unknown): number {
  if (typeof delay !== 'number' || !Number.isInteger(delay) || delay < 0) {
    throw new OutboxPayloadError(invalidDelay(type, delay));
  }
  return delay;
}
