import { EntityManager } from '@mikro-orm/postgresql';
import type { Type } from '@nestjs/common';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { OutboxOrdered, currentMessage } from 'nest-outbox';
import { Deposited, Withdrawn } from './bank.events.js';

/** Which build of the ledger service this process runs (env `BANK_BUILD`), written beside each effect. */
export const BUILD = process.env.BANK_BUILD ?? '';

/** One `ledger_effect` row for this handler run, in the handler's transaction (with its inbox mark). */
async function recordEffect(em: EntityManager, handler: string, event: Deposited | Withdrawn): Promise<void> {
  await em.execute(
    'insert into ledger_effect (message_id, handler, account_id, sequence, build) values (?, ?, ?, ?, ?)',
    [currentMessage()!.headers.messageId, handler, event.accountId, event.sequence, BUILD],
  );
}

/** Books every deposit, per account in the order they were made. In every build. */
@EventsHandler(Deposited)
@OutboxOrdered()
export class CreditLedger implements IEventHandler<Deposited> {
  constructor(private readonly em: EntityManager) {}

  handle(event: Deposited): Promise<void> {
    return recordEffect(this.em, 'CreditLedger', event);
  }
}

/** A second handler of an existing type: added in v2, retired on purpose in v3. */
@EventsHandler(Deposited)
export class GrantBonus implements IEventHandler<Deposited> {
  constructor(private readonly em: EntityManager) {}

  handle(event: Deposited): Promise<void> {
    return recordEffect(this.em, 'GrantBonus', event);
  }
}

/** The handler of a new type: from v2 on. */
@EventsHandler(Withdrawn)
export class DebitLedger implements IEventHandler<Withdrawn> {
  constructor(private readonly em: EntityManager) {}

  handle(event: Withdrawn): Promise<void> {
    return recordEffect(this.em, 'DebitLedger', event);
  }
}

/** The builds of the ledger service a rolling deploy goes through: their handlers and what they retire. */
export const LEDGER_BUILDS: Record<string, { handlers: Type[]; retiredHandlers: string[] }> = {
  v1: { handlers: [CreditLedger], retiredHandlers: [] },
  v2: { handlers: [CreditLedger, GrantBonus, DebitLedger], retiredHandlers: [] },
  v3: { handlers: [CreditLedger, DebitLedger], retiredHandlers: ['GrantBonus'] },
};
