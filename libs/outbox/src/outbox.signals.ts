import { Injectable } from '@nestjs/common';

type Listener = () => void;

/**
 * "Rows committed": raised by capture right after a commit that wrote outbox rows, heard by the
 * relay so it does not wait for its next scheduled tick. Synchronous and in-process.
 */
@Injectable()
export class OutboxSignals {
  private readonly listeners = new Set<Listener>();

  rowsCommitted(): void {
    for (const listener of this.listeners) listener();
  }

  onRowsCommitted(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}
