import type { Load, WriteReport } from './protocol.js';

/** What a node process runs: a writer, a consumer, or both (the single-process variant). */
export interface NodeRole {
  /** now() when the process finished booting (an outbox process's relay starts then). */
  bootedAt: number;
  /** Live heap at boot, MB. */
  liveHeapMB: number;
  write?(load: Load, record: boolean): Promise<WriteReport>;
  /** Rows this process's relay dispatched since it started (outbox processes with a relay). */
  relayDispatched?(): number;
  /** For consumers created stopped. */
  start?(): void;
  close(): Promise<void>;
}
