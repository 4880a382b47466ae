import { resolveOutboxOptions, type OutboxTableNames } from '../outbox.options.js';
import { qualifiedTables } from './outbox.tables.js';

/** DDL for the outbox and inbox tables; idempotent, for migrations or any other schema tool. */
export function outboxSchemaSql(tables: OutboxTableNames = {}): string[] {
  const names = resolveOutboxOptions({ tables }).tables;
  const { outbox, inbox } = qualifiedTables(names);
  return [
    ...(names.schema ? [`create schema if not exists "${names.schema}"`] : []),
    `create table if not exists ${outbox} (
      "id" uuid primary key,
      "type" text not null,
      "payload" jsonb not null,
      "headers" jsonb not null,
      "aggregate_type" text null,
      "aggregate_id" text null,
      "occurred_at" timestamptz not null,
      "available_at" timestamptz null,
      "attempts" int not null default 0,
      "locked_until" timestamptz null,
      "last_error" text null,
      "dispatched_at" timestamptz null
    )`,
    // The relay scans only pending rows, oldest id first; dispatched rows cost it nothing.
    `create index if not exists "${names.outbox}_pending_idx" on ${outbox} ("id") where "dispatched_at" is null`,
    `create index if not exists "${names.outbox}_dispatched_idx" on ${outbox} ("dispatched_at") where "dispatched_at" is not null`,
    `create table if not exists ${inbox} (
      "message_id" uuid not null,
      "handler" text not null,
      "processed_at" timestamptz not null default now(),
      primary key ("message_id", "handler")
    )`,
    `create index if not exists "${names.inbox}_processed_idx" on ${inbox} ("processed_at")`,
  ].map((statement) => statement.replace(/\n\s+/g, ' '));
}

/** DDL dropping both tables (the schema, if any, is left). */
export function dropOutboxSchemaSql(tables: OutboxTableNames = {}): string[] {
  const { outbox, inbox } = qualifiedTables(resolveOutboxOptions({ tables }).tables);
  return [`drop table if exists ${inbox}`, `drop table if exists ${outbox}`];
}
