import { OutboxEvent } from 'nest-outbox';

/** Money paid into an account; `sequence` counts the account's operations (1, 2, …). */
@OutboxEvent('bank.deposited.v1')
export class Deposited {
  constructor(
    readonly accountId: string,
    readonly amount: number,
    readonly sequence: number,
  ) {}
}

/** Money taken out of an account: the type a later build of the producer starts to write. */
@OutboxEvent('bank.withdrawn.v1')
export class Withdrawn {
  constructor(
    readonly accountId: string,
    readonly amount: number,
    readonly sequence: number,
  ) {}
}
