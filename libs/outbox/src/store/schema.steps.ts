import { indexName, qualifiedTables, type Tables } from './outbox.tables.js';

/**
 * The schema as a list of steps, oldest first. A step that has run in someone's database never
 * changes again: a later change is a new step. `outboxSchemaSql()` runs them all (each is
 * idempotent) and `outboxMigrations()` makes one MikroORM migration per step.
 */
export interface SchemaStep {
  /** The MikroORM migration name; the timestamp orders it among the application's own. */
  name: string;
  up(tables: Tables): string[];
  down(tables: Tables): string[];
}

export const SCHEMA_STEPS: readonly SchemaStep[] = [
  {
    name: 'Migration20261122000000_nest_outbox',
    up(tables) {
      const { outbox, inbox } = qualifiedTables(tables);
      return [
        ...(tables.schema ? [`create schema if not exists "${tables.schema}"`] : []),
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
        `create index if not exists "${indexName(tables.outbox, 'pending_idx')}"
          on ${outbox} ("id") where "dispatched_at" is null`,
        `create index if not exists "${indexName(tables.outbox, 'dispatched_idx')}"
          on ${outbox} ("dispatched_at") where "dispatched_at" is not null`,
        `create table if not exists ${inbox} (
          "message_id" uuid not null,
          "handler" text not null,
          "processed_at" timestamptz not null default now(),
          primary key ("message_id", "handler")
        )`,
        `create index if not exists "${indexName(tables.inbox, 'processed_idx')}" on ${inbox} ("processed_at")`,
      ];
    },
    down(tables) {
      const { outbox, inbox } = qualifiedTables(tables);
      return [`drop table if exists ${inbox}`, `drop table if exists ${outbox}`];
    },
  },
  {
    name: 'Migration20261123000000_nest_outbox_claim_owner',
    // Which relay holds a row's lease, so a relay only releases or marks rows it still holds.
    up: (tables) => [`alter table ${qualifiedTables(tables).outbox} add column if not exists "claimed_by" text null`],
    down: (tables) => [`alter table ${qualifiedTables(tables).outbox} drop column if exists "claimed_by"`],
  },
];
