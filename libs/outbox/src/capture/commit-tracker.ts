import type { EntityManager, EventSubscriber, Transaction, TransactionEventArgs } from '@mikro-orm/core';
import { Logger } from '@nestjs/common';
import type { CommitSignal } from '../routing/commit.signal.js';
import { errorText } from '../util/error-text.js';

/** Who hears a committed transaction's events in this process (the EventBus stream, for sagas). */
export interface CommittedEvents {
  /** Whether anyone listens now; when nobody does, flushes keep no events for it. */
  wanted(): boolean;
  emit(events: readonly object[]): void;
}

/** What a transaction (or savepoint) wrote to the outbox so far. */
interface Written {
  events: object[] | undefined;
}

/**
 * Says "rows committed" once per commit that wrote outbox rows, right after that commit: the
 * relay's wake-up, and the events for the EventBus stream. Kept per transaction, so one commit can
 * neither take nor delay another's; a savepoint's rows join its parent when it is released and
 * are dropped when it rolls back.
 */
export class CommitTracker implements EventSubscriber {
  private readonly logger = new Logger('Outbox');
  private readonly open = new WeakMap<Transaction, Written>();
  private readonly parentOf = new WeakMap<Transaction, Transaction>();
  /** Between "savepoint about to start" (which names its parent) and "started" (which names itself). */
  private readonly startingIn = new WeakMap<EntityManager, Transaction>();
  committedEvents: CommittedEvents | undefined;

  constructor(private readonly commits: CommitSignal) {}

  /** Whether flushes should keep the events they write, for `committedEvents`. */
  wantsEvents(): boolean {
    return this.committedEvents?.wanted() ?? false;
  }

  /** A flush of `em` wrote rows: they are committed now, or when `em`'s transaction commits. */
  flushed(em: EntityManager, events: object[] | undefined): void {
    const transaction = em.getTransactionContext<Transaction>();
    if (transaction) this.join(transaction, events);
    else this.committed(events);
  }

  beforeTransactionStart({ em, transaction }: TransactionEventArgs): void {
    if (transaction) this.startingIn.set(em, transaction);
    else this.startingIn.delete(em);
  }

  afterTransactionStart({ em, transaction }: TransactionEventArgs): void {
    const parent = this.startingIn.get(em);
    if (!parent || !transaction) return;
    this.startingIn.delete(em);
    this.parentOf.set(transaction, parent);
  }

  afterTransactionCommit({ transaction }: TransactionEventArgs): void {
    const written = transaction && this.open.get(transaction);
    if (!written) return;
    this.open.delete(transaction);
    const parent = transaction.savepointName ? this.parentOf.get(transaction) : undefined;
    if (parent) this.join(parent, written.events);
    else this.committed(written.events);
  }

  afterTransactionRollback({ transaction }: TransactionEventArgs): void {
    if (transaction) this.open.delete(transaction);
  }

  private join(transaction: Transaction, events: object[] | undefined): void {
    const written = this.open.get(transaction);
    if (!written) this.open.set(transaction, { events: events && [...events] });
    else if (events) (written.events ??= []).push(...events);
  }

  private committed(events: object[] | undefined): void {
    this.commits.notify();
    if (!events || events.length === 0 || !this.committedEvents) return;
    try {
      this.committedEvents.emit(events);
    } catch (error) {
      // The commit happened; a listener's failure must not make the caller believe otherwise.
      this.logger.error(`A listener of committed outbox events threw: ${errorText(error)}`);
    }
  }
}
