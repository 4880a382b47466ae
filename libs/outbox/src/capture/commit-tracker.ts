import type { EntityManager, EventSubscriber, Transaction, TransactionEventArgs } from '@mikro-orm/core';
import { Logger } from '@nestjs/common';
import type { CommitSignal, CommittedRows } from '../routing/commit.signal.js';
import type { OutboxRow } from '../store/outbox-row.js';
import type { OutboxMetrics } from '../telemetry/outbox.metrics.js';
import { currentMessage, runInMessageContext, type MessageContext } from '../message/message.context.js';
import { errorText } from '../util/error-text.js';
import { silentlyRolledBack, unseenCommit } from '../outbox.messages.js';
import type { CommitOutcome } from './commit-outcomes.js';

/** Who hears a committed transaction's events in this process (the EventBus stream, for sagas). */
export interface CommittedEvents {
  /** Whether anyone listens now; when nobody does, flushes keep no events for it. */
  wanted(): boolean;
  emit(events: readonly object[]): void;
}

/** What a flush wrote to the outbox. */
export interface FlushedRows {
  /** Its events, when someone listens to committed events. */
  events: object[] | undefined;
  /** The type of each row, when metrics are on: counted once the rows committed. */
  types: string[] | undefined;
  /** Its rows written leased to this process, for `committedRows` to send. */
  leased: OutboxRow[];
  /** Whether a relay must move some of its rows: those not leased, or rows the application persisted itself. */
  wakesRelay: boolean;
  /** Leased in the caller's transaction: what PostgreSQL answered to that transaction's COMMIT. */
  outcome?: CommitOutcome;
}

/**
 * The events of one flush, with the message being handled when it ran: listeners (sagas) hear
 * them in that message's context, so what they cause names it, even when several handler runs
 * shared the transaction that committed them.
 */
interface EventGroup {
  events: object[];
  context: MessageContext | undefined;
}

/** What a transaction (or savepoint) so far wrote to the outbox. */
interface Written {
  groups: EventGroup[] | undefined;
  types: string[] | undefined;
  leased: OutboxRow[];
  /** When the first of `leased` was written: their lease runs from then, not from the commit. */
  leasedAt: number | undefined;
  wakesRelay: boolean;
  outcomes: CommitOutcome[];
}

/**
 * Says "rows committed" once per commit that wrote outbox rows, right after that commit: the
 * relay's wake-up (unless every row was leased to this process: `committedRows` sends those), and
 * the events for the EventBus stream. Kept per transaction, so one commit can
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
  committedRows: CommittedRows | undefined;

  constructor(
    private readonly commits: CommitSignal,
    private readonly metrics: OutboxMetrics,
  ) {}

  /** Whether flushes should keep the types of the rows they write, for the written-messages counter. */
  wantsTypes(): boolean {
    return this.metrics.enabled;
  }

  /** Whether flushes should keep the events they write, for `committedEvents`. */
  wantsEvents(): boolean {
    return this.committedEvents?.wanted() ?? false;
  }

  /** A flush of `em` wrote rows: they are committed now, or when `em`'s transaction commits. */
  flushed(em: EntityManager, { events, types, leased, wakesRelay, outcome }: FlushedRows): void {
    const groups = events && [{ events, context: currentMessage() }];
    const leasedAt = leased.length > 0 ? Date.now() : undefined;
    const written = { groups, types, leased, leasedAt, wakesRelay, outcomes: outcome ? [outcome] : [] };
    const transaction = em.getTransactionContext<Transaction>();
    if (transaction) this.join(transaction, written);
    else this.committed(written);
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
    if (parent) this.join(parent, written);
    else this.committed(written);
  }

  afterTransactionRollback({ transaction }: TransactionEventArgs): void {
    if (transaction) this.open.delete(transaction);
  }

  private join(transaction: Transaction, { groups, types, leased, leasedAt, wakesRelay, outcomes }: Written): void {
    const written = this.open.get(transaction);
    if (!written) {
      const copy = { groups: groups && [...groups], types: types && [...types], leased: [...leased], leasedAt };
      this.open.set(transaction, { ...copy, wakesRelay, outcomes: [...outcomes] });
    } else {
      if (groups) (written.groups ??= []).push(...groups);
      if (types) (written.types ??= []).push(...types);
      for (const row of leased) written.leased.push(row);
      written.leasedAt = Math.min(written.leasedAt ?? Infinity, leasedAt ?? Infinity);
      written.wakesRelay ||= wakesRelay;
      for (const outcome of outcomes) written.outcomes.push(outcome);
    }
  }

  private committed({ groups, types, leased, leasedAt, wakesRelay, outcomes }: Written): void {
    const answers = new Set(outcomes.map((outcome) => outcome.committed));
    if (answers.has(false)) {
      // Nothing the transaction wrote exists: no message to send, no event to announce.
      this.logger.warn(silentlyRolledBack());
      return;
    }
    if (wakesRelay) this.commits.notify();
    // The answer was not seen (it never is after a COMMIT that failed, which fires rollback hooks):
    // whether the rows exist is left to a relay's claim, which only finds committed ones.
    if (leased.length > 0) {
      if (answers.has(undefined)) this.committedRows?.handBack(leased, unseenCommit());
      else this.committedRows?.send(leased, leasedAt!);
    }
    if (types) this.metrics.messagesWritten(types);
    const listener = this.committedEvents;
    if (!groups || !listener) return;
    for (const { events, context } of groups) {
      if (events.length === 0) continue;
      try {
        if (context) runInMessageContext(context, () => listener.emit(events));
        else listener.emit(events);
      } catch (error) {
        // The commit happened; a listener's failure must not make the caller believe otherwise.
        this.logger.error(`A listener of committed outbox events threw: ${errorText(error)}`);
      }
    }
  }
}
