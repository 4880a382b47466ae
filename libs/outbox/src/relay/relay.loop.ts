import { Logger } from '@nestjs/common';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { enqueueRefusedLine, noRegistry, relayOutage, relayRecovered } from '../outbox.messages.js';
import { errorText } from '../util/error-text.js';
import type { OutboxMetrics } from '../telemetry/outbox.metrics.js';
import type { RelayCounters } from '../telemetry/process-counters.js';
import { OutageLog } from '../util/outage-log.js';
import type { SubscriptionRegistry } from '../routing/subscription.registry.js';
import { missesOrderedRoute, orderedRoutesOf, routeBatch } from './message.router.js';
import { enqueueTimeoutMs, type RelayQueue } from './relay.queue.js';
import type { ClaimedRow, DispatchedRow, OrderedRoutes, RelayStore } from './relay.store.js';

/**
 * The relay: claim due rows, enqueue them, mark them dispatched; repeat while batches come back
 * full. Woken by commits and by a schedule; never runs two drains at once in a process. Every
 * failure is caught, the claimed rows are released, and the loop backs off and tries again.
 */
/** How long enqueued rows may wait for the next drain to mark them before one is started for them. */
const CARRY_MS = 20;

export class RelayLoop {
  private readonly logger = new Logger('OutboxRelay');
  private readonly relay: ResolvedOutboxOptions['relay'];
  private readonly outage: OutageLog;
  private draining: Promise<void> | undefined;
  private wokenWhileDraining = false;
  private stopped = false;
  private backoffMs = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  /**
   * After an enqueue that Redis refused (not an outage), rows are claimed one at a time until one
   * goes through, so a row Redis will never take spends its own attempts, not its neighbours'.
   */
  private isolating = false;
  /** Ids claimed and not yet marked (at most two batches); released if shutdown cannot wait. */
  private readonly unmarked = new Set<string>();
  private warnedNoRegistry = false;
  /**
   * Rows enqueued by the last drain, not yet marked: the next drain's first claim marks them in
   * the same statement, so at a low rate each message costs one statement here, not two. A short
   * timer wakes a drain for them when no commit does; `stop()` marks them before it returns.
   */
  private carried: DispatchedRow[] = [];
  private carryTimer: NodeJS.Timeout | undefined;
  /** Ordered routes of the last routing table read: what the next claim gives key positions for. */
  private ordered: OrderedRoutes | undefined;
  private readonly service: string;

  constructor(
    private readonly store: RelayStore,
    private readonly queue: RelayQueue,
    private readonly registry: SubscriptionRegistry,
    options: ResolvedOutboxOptions,
    private readonly stats: RelayCounters,
    private readonly metrics: OutboxMetrics,
  ) {
    this.relay = options.relay;
    this.service = options.service;
    this.outage = new OutageLog(this.logger, {
      failed: (reason) => relayOutage(this.service, reason, this.relay.maxBackoffMs),
      recovered: relayRecovered,
    });
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
    clearTimeout(this.carryTimer);
    this.retryTimer = undefined;
    await this.draining;
    await this.mark(this.takeCarried());
  }

  /**
   * For a shutdown that cannot wait any longer: hands the in-flight batch back so another relay
   * takes it now rather than after the lease. If its enqueue did land, the re-add is a no-op.
   */
  async releaseInFlight(): Promise<number> {
    const ids = [...this.unmarked];
    this.unmarked.clear();
    if (ids.length > 0) await this.store.release(ids, 'relay shut down before marking', false);
    return ids.length;
  }

  /** Resolves when no drain is running. */
  async idle(): Promise<void> {
    while (this.draining) await this.draining;
  }

  private async drain(): Promise<void> {
    try {
      do {
        this.wokenWhileDraining = false;
        // Only a batch that reached BullMQ proves an outage over; an empty claim proves nothing of Redis.
        if ((await this.pipeline()) > 0) this.recovered();
        // For health checks: this relay works, even when it found nothing to do.
        this.stats.lastActiveAt = Date.now();
      } while (this.wokenWhileDraining && !this.stopped);
    } catch (error) {
      // Whatever is still unmarked is either released or held by a lease that expires: the
      // rows are pending again either way, and no longer this loop's to hand back.
      this.unmarked.clear();
      this.failed(error);
    }
  }

  /**
   * Claim → enqueue → mark, two batches deep: while batch n is enqueued, one statement marks
   * batch n-1 (its enqueue has resolved) and claims batch n+1. Enqueues run one at a time in
   * commit order, and a row is only ever marked after its own enqueue resolved.
   */
  private async pipeline(): Promise<number> {
    let moved = 0;
    let enqueued: DispatchedRow[] = [];
    const carried = this.takeCarried();
    // The table as last read is enough to claim with: the enqueue reads it again after the claim
    // and hands the batch back if it changed in a way that matters. One GET less per drain.
    const { version, table } = await this.registry.lastRoutes().catch(async (error: unknown) => {
      this.carry(carried);
      throw error;
    });
    if (version === null) {
      await this.mark(carried);
      return this.waitForRegistry();
    }
    this.ordered = orderedRoutesOf(table);
    let batch = await this.claim(carried);
    this.settle(carried);
    while (batch.length > 0) {
      const more = batch.length === this.batchSize() && !this.stopped;
      const [added, claimed] = await Promise.allSettled([
        this.enqueue(batch),
        more ? this.claim(enqueued) : this.mark(enqueued).then(() => []),
      ]);
      if (claimed.status === 'rejected') {
        // PostgreSQL trouble: what is enqueued but unmarked is re-dispatched after the lease, a no-op in BullMQ.
        throw claimed.reason;
      }
      if (more) this.settle(enqueued); // the claim statement marked them
      if (added.status === 'rejected') {
        await this.release(claimed.value, added.reason, false);
        throw added.reason;
      }
      if (added.value === 'subscriptions changed') {
        // Claimed with an older table: hand both batches back and claim them again at once.
        await this.release(claimed.value, 'subscriptions changed while claimed', false);
        this.wokenWhileDraining = true;
        enqueued = []; // marked already, by the claim statement or by `mark`
        break;
      }
      if (this.isolating) {
        // A row went through alone: full batches again, and this drain goes on with them.
        this.isolating = false;
        this.wokenWhileDraining = true;
      }
      moved += batch.length;
      enqueued = added.value;
      batch = claimed.value;
    }
    this.carry(enqueued);
    return moved;
  }

  private takeCarried(): DispatchedRow[] {
    clearTimeout(this.carryTimer);
    this.carryTimer = undefined;
    const carried = this.carried;
    this.carried = [];
    return carried;
  }

  private carry(rows: DispatchedRow[]): void {
    if (rows.length === 0) return;
    this.carried.push(...rows);
    if (this.stopped) return;
    this.carryTimer ??= setTimeout(() => {
      this.carryTimer = undefined;
      this.wake();
    }, CARRY_MS);
    this.carryTimer.unref();
  }

  /**
   * No service has registered in this Redis (a new deployment, or a Redis that lost its data):
   * routing now would mark every row as unsubscribed. Rows stay pending until a consumer
   * registers, which consumers do at boot and with every heartbeat.
   */
  private waitForRegistry(): number {
    if (!this.warnedNoRegistry) {
      this.warnedNoRegistry = true;
      this.logger.warn(noRegistry(this.service));
    }
    return 0;
  }

  private batchSize(): number {
    return this.isolating ? 1 : this.relay.batchSize;
  }

  private async claim(enqueued: DispatchedRow[]): Promise<ClaimedRow[]> {
    const rows = await this.store.claim(this.batchSize(), this.relay.leaseMs, enqueued, this.ordered);
    for (const row of rows) this.unmarked.add(row.id);
    this.stats.claimed += rows.length;
    return rows;
  }

  /**
   * Routes the batch with the subscriptions as they are now — read after the claim, so a handler
   * registered before a message was written is always stamped on it — and enqueues it.
   */
  private async enqueue(rows: ClaimedRow[]): Promise<DispatchedRow[] | 'subscriptions changed'> {
    try {
      const { version, table } = await this.registry.routes();
      this.ordered = orderedRoutesOf(table);
      if (version === null || missesOrderedRoute(rows, table)) {
        await this.release(rows, 'subscriptions changed while claimed', false);
        return 'subscriptions changed';
      }
      const routed = routeBatch(rows, table, this.service);
      await this.queue.add(routed, enqueueTimeoutMs(this.relay.leaseMs));
      return rows.map((row) => ({ id: row.id, type: row.type, routedTo: routed.routedTo.get(row.id) ?? [] }));
    } catch (error) {
      // Redis answering means it refused these jobs: the rows spend an attempt and go one by one.
      const refused = await this.queue.answers();
      if (refused) {
        this.isolating = true;
        this.logger.warn(enqueueRefusedLine(this.service, rows, this.relay.maxAttempts, errorText(error)));
      }
      await this.release(rows, error, refused);
      throw error;
    }
  }

  private async mark(rows: DispatchedRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.store.markDispatched(rows);
    this.settle(rows);
  }

  /** Rows marked by a claim statement or by `mark`: no longer ours to release. */
  private settle(rows: readonly DispatchedRow[]): void {
    for (const row of rows) this.unmarked.delete(row.id);
    this.stats.dispatched += rows.length;
    // A drain through a long backlog takes a while; each batch marked shows the relay is moving.
    if (rows.length > 0) this.stats.lastActiveAt = Date.now();
    this.metrics.messagesDispatched(rows);
  }

  private async release(rows: ClaimedRow[], error: unknown, spentAttempt: boolean): Promise<void> {
    if (rows.length === 0) return;
    if (spentAttempt || typeof error !== 'string') {
      this.stats.failedBatches++;
      this.metrics.enqueueFailed(rows.length, spentAttempt);
    }
    const ids = rows.map((row) => row.id);
    for (const id of ids) this.unmarked.delete(id);
    const reason = typeof error === 'string' ? error : `enqueue failed: ${errorText(error)}`;
    await this.store.release(ids, reason, spentAttempt).catch(() => undefined);
  }

  private failed(error: unknown): void {
    this.stats.failedDrains++;
    this.outage.failed(errorText(error));
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
    this.outage.recovered();
  }
}
