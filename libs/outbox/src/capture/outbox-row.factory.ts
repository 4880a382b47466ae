import { OutboxPayloadError } from '../outbox.errors.js';
import { serialiseEvent } from '../message/event-codec.js';
import { eventTypeOf } from '../message/event-type.js';
import { currentMessage } from '../message/message.context.js';
import type { OutboxHeaders } from '../message/message-headers.js';
import { newMessageId } from '../message/message-id.js';
import { OutboxMessage } from '../message/outbox-message.entity.js';

export interface PublishOptions {
  /** Deliver no sooner than this many ms after the commit. */
  delay?: number;
  /** Groups messages like an aggregate id does (stored as `aggregate_id`). */
  key?: string;
  /** Application headers; values must be strings. */
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
  constructor(private readonly maxPayloadBytes: number) {}

  create(event: object, origin: RowOrigin, options: PublishOptions = {}): OutboxMessage {
    const payload = serialiseEvent(event, this.maxPayloadBytes);
    const type = eventTypeOf(event.constructor);
    const id = newMessageId();
    const now = new Date();
    const parent = currentMessage();
    const headers: OutboxHeaders = {
      messageId: id,
      correlationId: parent?.headers.correlationId ?? origin.correlationId ?? id,
      ...(parent ? { causationId: parent.headers.messageId } : {}),
      occurredAt: now.toISOString(),
      ...(options.headers ? { custom: checkHeaders(type, options.headers) } : {}),
    };
    const row = new OutboxMessage();
    row.id = id;
    row.type = type;
    row.payload = payload;
    row.headers = JSON.stringify(headers);
    row.aggregateType = origin.aggregateType;
    row.aggregateId = options.key ?? origin.aggregateId;
    row.occurredAt = now;
    row.availableAt = options.delay ? new Date(now.getTime() + checkDelay(type, options.delay)) : null;
    row.attempts = 0;
    row.lockedUntil = null;
    row.lastError = null;
    row.dispatchedAt = null;
    return row;
  }
}

function checkHeaders(type: string, headers: Record<string, unknown>): Record<string, string> {
  if (headers === null || typeof headers !== 'object' || Array.isArray(headers)) {
    throw new OutboxPayloadError(`Headers of ${type} must be an object of string values. Nothing was written.`);
  }
  const clean: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) {
    if (name === '__proto__' || name === 'constructor' || name === 'prototype') {
      throw new OutboxPayloadError(`Header name "${name}" of ${type} is not allowed. Nothing was written.`);
    }
    if (typeof value !== 'string') {
      throw new OutboxPayloadError(`Header "${name}" of ${type} must be a string, got ${value === null ? 'null' : typeof value}. Nothing was written.`);
    }
    clean[name] = value;
  }
  return clean;
}

function checkDelay(type: string, delay: unknown): number {
  if (typeof delay !== 'number' || !Number.isInteger(delay) || delay < 0) {
    throw new OutboxPayloadError(`Delay of ${type} must be a non-negative integer of milliseconds, got ${String(delay)}. Nothing was written.`);
  }
  return delay;
}
