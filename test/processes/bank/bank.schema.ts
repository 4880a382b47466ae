import { outboxSchemaSql } from 'nest-outbox';

/** The producer's database (service `bank`): its outbox and its accounts. */
export const BANK_SCHEMA = [
  ...outboxSchemaSql(),
  'create table bank_account (id text primary key, balance int not null, operations int not null)',
];

/**
 * The consumer's own database (service `ledger`): its inbox (the outbox tables) and the effects its
 * handlers write, one row per handler run, in the handler's transaction. No unique key on
 * purpose: a handler run twice shows as two rows.
 */
export const LEDGER_SCHEMA = [
  ...outboxSchemaSql(),
  `create table ledger_effect (id bigserial primary key, message_id uuid not null, handler text not null,
     account_id text not null, sequence int not null, build text not null)`,
];
