import { Injectable } from '@nestjs/common';
import type { OutboxRow } from '../store/outbox-row.js';

type Listener = () => void;

/**
 * Who enqueues, right after their commit, the rows written leased to this process
 * (`relay.dispatchOnCommit`): capture hands them over, the relay stage sends them.
 */
export interface CommittedRows {
  /** `leasedAt`: when the first of them was written, which their lease counts from. */
  send(rows: readonly OutboxRow[], leasedAt: number): void;
  /** Gives their lease up, for a relay to claim them if they exist; `reason` is kept on them. */
  handBack(rows: readonly OutboxRow[], reason: string): void;
}

/**
 * "Outbox rows committed", in-process: raised by capture right after a commit that wrote rows a
 * relay must move (with `relay.dispatchOnCommit`, rows leased to this process are not, until handed back),
 * heard by the relay so it does not wait for its next scheduled tick, and by the wake channel that
 * tells relays in other processes. Synchronous.
 */
@Injectable()
export class CommitSignal {
  private readonly listeners = new Set<Listener>();

  notify(): void {
    for (const listener of this.listeners) listener();
  }

  /** Returns the function that stops listening. */
  listen(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
