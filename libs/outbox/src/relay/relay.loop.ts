import { Logger } from '@nestjs/common';
import { describe } from '../outbox.errors.js';
import type { ResolvedOutboxOptions } from '../outbox.options.js';
import type { RelayQueue } from './relay.queue.js';
import type { RelayStore } from './relay.store.js';

export interface RelayStats {
  claimed: number;
  dispatched: number;
  failedBatches: number;
}

/**
 * The relay: claim due rows, enqueue them, mark them dispatched; repeat while batches come back
 * full. Woken by commits and by a schedule; never runs two drains at once in a process. Every
 * failure is caught, the claimed rows are released, and the loop backs off and tries again.
 */
export class RelayLoop {
  private readonly logger = new Logger('OutboxRelay');
  private readonly relay: ResolvedOutboxOptions['relay'];
  private draining: Promise<void> | undefined;
  private wokenWhileDraining = false;
  private stopped = false;
  private backoffMs = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private outageSince: number | undefined;
  /** Ids claimed by the batch in flight and not yet marked; released if shutdown cannot wait. */
  private inFlight: string[] = [];
  readonly stats: RelayStats = { claimed: 0, dispatched: 0, failedBatches: 0 };

  constructor(
    private readonly store: RelayStore,
    private readonly queue: RelayQueue,
    options: ResolvedOutboxOptions,
  ) {
    this.relay = options.relay;
  }

  /** Runs a drain now, or right after the current one; a burst of wakes costs one extra drain. */
  wake(): void {
    if (this.stopped || this.retryTimer) return;
    if (this.draining) {
      this.wokenWhileDraining = true;
      return;
    }
    this.draining = this.drain().finally(() => {
      this.draining = undefined;
    });
  }

  /** Resolves once the current batch has been enqueued and marked; nothing new is claimed after it. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    this.retryTimer = undefined;
    await this.draining;
  }

  /**
   * For a shutdown that cannot wait any longer: hands the in-flight batch back so another relay
   * takes it now rather than after the lease. If its enqueue did land, the re-add is a no-op.
   */
  async releaseInFlight(): Promise<number> {
    const ids = this.inFlight;
    this.inFlight = [];
    if (ids.length > 0) await this.store.release(ids, 'relay shut down before marking');
    return ids.length;
  }

  /** Resolves when no drain is running (for tests and the demo). */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private async drain(): Promise<void> {
    try {
      do {
        this.wokenWhileDraining = false;
        while (!this.stopped && (await this.relayBatch()) === this.relay.batchSize);
      } while (this.wokenWhileDraining && !this.stopped);
      this.recovered();
    } catch (error) {
      this.failed(error);
    }
  }

  private async relayBatch(): Promise<number> {
    const rows = await this.store.claim(this.relay.batchSize, this.relay.leaseMs);
    if (rows.length === 0) return 0;
    this.stats.claimed += rows.length;
    const ids = rows.map((row) => row.id);
    this.inFlight = ids;
    try {
      // Bounded well inside the lease, so a hung Redis cannot outlive our claim unnoticed; BullMQ
      // waits for a reconnect rather than failing, and a healthy addBulk takes milliseconds.
      await this.queue.add(rows, Math.min(10_000, Math.max(500, Math.floor(this.relay.leaseMs / 2))));
    } catch (error) {
      this.stats.failedBatches++;
      this.inFlight = [];
      await this.store.release(ids, `enqueue failed: ${describe(error)}`).catch(() => undefined);
      throw error;
    }
    await this.store.markDispatched(ids);
    this.inFlight = [];
    this.stats.dispatched += rows.length;
    return rows.length;
  }

  private failed(error: unknown): void {
    if (this.outageSince === undefined) {
      this.outageSince = Date.now();
      this.logger.error(
        `Relay cannot move outbox rows (${describe(error)}). Rows stay pending and nothing is lost; ` +
          `retrying with backoff up to ${this.relay.maxBackoffMs} ms. Check Redis and PostgreSQL; this is logged once per outage.`,
      );
    }
    this.backoffMs = Math.min(this.relay.maxBackoffMs, this.backoffMs ? this.backoffMs * 2 : 100);
    if (this.stopped) return;
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.wake();
    }, this.backoffMs);
    this.retryTimer.unref();
  }

  private recovered(): void {
    this.backoffMs = 0;
    if (this.outageSince === undefined) return;
    this.logger.log(`Relay recovered after ${((Date.now() - this.outageSince) / 1000).toFixed(1)} s; pending rows are moving again.`);
    this.outageSince = undefined;
  }
}
