import { Logger } from '@nestjs/common';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { dispatchOnCommitOutage, dispatchOnCommitRecovered } from '../outbox.messages.js';
import type { CommitSignal, CommittedRows } from '../routing/commit.signal.js';
import type { RoutingTable, SubscriptionRegistry } from '../routing/subscription.registry.js';
import type { LeaseAtInsert } from '../store/outbox-row.insert.js';
import type { OutboxRow } from '../store/outbox-row.js';
import type { OutboxMetrics } from '../telemetry/outbox.metrics.js';
import type { RelayCounters } from '../telemetry/process-counters.js';
import { errorText } from '../util/error-text.js';
import { OutageLog } from '../util/outage-log.js';
import { missesOrderedRoute, orderedRoutesOf, routeBatch, type RoutableRow } from './message.router.js';
import { enqueueTimeoutMs, type RelayQueue } from './relay.queue.js';
import type { DispatchedRow, RelayStore } from './relay.store.js';

/**
 * How long enqueued rows wait for others to share their mark: at a low rate a statement per
 * commit would cost PostgreSQL more than the claim this path saves.
 */
const MARK_EVERY_MS = 20;
/** After a failed enqueue, rows are left to a relay for this long before this process tries again. */
const PAUSE_AFTER_FAILURE_MS = 1000;

/**
 * `relay.dispatchOnCommit`: the process that commits rows enqueues them itself, right after the
 * commit, with no claim statement and no wake-up of a relay. Capture writes the rows it `takes`
 * already leased to this process (the relay's claim, made in the application's own INSERT); here
 * they are routed and enqueued like a relay's batch, then marked in batches. Whatever cannot go
 * this way is handed back to the relays (lease given up, relays woken): rows needing a place in
 * their key's order, rows committed while no service is registered, and rows whose enqueue
 * failed. If this process dies first, the lease runs out and a relay sends them; a second add of
 * the same job id is a no-op in BullMQ.
 */
export class DispatchOnCommit implements CommittedRows, LeaseAtInsert {
  readonly relayId: string;
  readonly leaseMs: number;
  private readonly logger = new Logger('OutboxRelay');
  private readonly outage: OutageLog;
  /** One batch on its way to BullMQ at a time; rows committed meanwhile wait and go together next. */
  private sending: Promise<void> | undefined;
  private waiting: Waiting[] = [];
  /** Event types an ordered handler subscribes to, as last read: their keyed rows go through a relay. */
  private orderedTypes = new Set<string>();
  private toMark: DispatchedRow[] = [];
  /** Rows this process took to send and has neither marked nor handed back: what a shutdown out of time releases. */
  private readonly unmarked = new Set<string>();
  private markTimer: NodeJS.Timeout | undefined;
  private marking: Promise<void> | undefined;
  /** Hand-backs on their way: shutdown waits for them, or their rows would wait for the lease to run out. */
  private readonly releasing = new Set<Promise<void>>();
  private pausedUntil = 0;
  private stopped = false;

  constructor(
    private readonly store: RelayStore,
    private readonly queue: RelayQueue,
    private readonly registry: SubscriptionRegistry,
    private readonly commits: CommitSignal,
    private readonly options: ResolvedOutboxOptions,
    private readonly stats: RelayCounters,
    private readonly metrics: OutboxMetrics,
    relayId: string,
  ) {
    this.relayId = relayId;
    this.leaseMs = options.relay.leaseMs;
    this.outage = new OutageLog(this.logger, {
      failed: (reason) => dispatchOnCommitOutage(options.service, reason),
      recovered: dispatchOnCommitRecovered,
    });
  }

  /** Reads which types have ordered handlers, so their keyed rows are not leased here in vain. */
  async start(): Promise<void> {
    const { table } = await this.registry.lastRoutes().catch(() => ({ table: undefined }));
    if (table) this.learn(table);
  }

  /** Whether capture writes this row leased to this process; the others wake a relay as before. */
  takes(row: OutboxRow): boolean {
    if (this.stopped || row.availableAt !== null || Date.now() < this.pausedUntil) return false;
    return row.key === null || !this.orderedTypes.has(row.type);
  }

  send(rows: readonly OutboxRow[], leasedAt: number): void {
    const age = Date.now() - leasedAt;
    // A long transaction: a relay may claim them before this process marks them, and send them again.
    if (age > this.leaseMs / 2) {
      return this.handBack(rows, `committed ${age} ms after it was written, past half its lease (relay.leaseMs)`);
    }
    for (const row of rows) {
      this.waiting.push({ row: routableRowOf(row), leasedAt });
      this.unmarked.add(row.id);
    }
    if (!this.sending) this.sendWaiting();
  }

  handBack(rows: readonly { id: string }[], reason: string): void {
    const released: Promise<void> = this.release(rows, reason).finally(() => this.releasing.delete(released));
    this.releasing.add(released);
  }

  /** Waits for the sends in flight and marks what they enqueued; rows committed after it go to a relay. */
  async stop(): Promise<void> {
    this.stopped = true;
    while (this.sending) await this.sending;
    await Promise.all(this.releasing);
    clearTimeout(this.markTimer);
    await this.marking;
    await this.mark();
  }

  /**
   * A shutdown out of time: hands back, spending no attempt, the rows not marked yet (those still
   * on their way to BullMQ too: if they get there, a relay's second add is a no-op). Returns how many.
   */
  async releaseInFlight(): Promise<number> {
    this.stopped = true;
    this.waiting = [];
    const ids = [...this.unmarked];
    this.unmarked.clear();
    if (ids.length > 0) await this.store.release(ids, 'shutdown ran out of time before they were marked', false);
    return ids.length;
  }

  private sendWaiting(): void {
    // At most a relay's batch per enqueue: it must fit the enqueue's time limit, as a claim's does.
    const batch = this.waiting.splice(0, this.options.relay.batchSize);
    // Rows that waited behind slow sends until a relay may soon claim them go to the relays now.
    const late = Date.now() - this.leaseMs / 2;
    const stale = batch.filter((waiting) => waiting.leasedAt < late).map((waiting) => waiting.row);
    if (stale.length > 0) this.handBack(stale, 'waited past half its lease (relay.leaseMs) behind slower sends');
    const rows = batch.filter((waiting) => waiting.leasedAt >= late).map((waiting) => waiting.row);
    this.sending = this.dispatch(rows).finally(() => {
      this.sending = undefined;
      if (this.waiting.length > 0) this.sendWaiting();
    });
  }

  private async dispatch(rows: RoutableRow[]): Promise<void> {
    if (rows.length === 0) return;
    /** Still leased to this process: what a failure hands back (a second release would spend an attempt back). */
    let held = rows;
    try {
      const { version, table } = await this.registry.routes();
      if (version === null) return await this.release(rows, 'no service had registered its subscriptions');
      this.learn(table);
      // Read after the commit, as a relay reads it after its claim: a handler registered before
      // the message was written is stamped on it; a place in a key's order is only given by a claim.
      const ordered = new Set(rows.filter((row) => missesOrderedRoute([row], table)));
      if (ordered.size > 0) {
        held = rows.filter((row) => !ordered.has(row));
        await this.release([...ordered], 'needs its place in its key order, which a relay gives');
      }
      if (held.length === 0) return;
      const routed = routeBatch(held, table, this.options.service);
      this.stats.claimed += held.length;
      await this.queue.add(routed, enqueueTimeoutMs(this.leaseMs));
      this.outage.recovered();
      this.marked(held.map((row) => ({ id: row.id, type: row.type, routedTo: routed.routedTo.get(row.id) ?? [] })));
    } catch (error) {
      this.pausedUntil = Date.now() + PAUSE_AFTER_FAILURE_MS;
      this.stats.failedBatches++;
      this.outage.failed(errorText(error));
      // The rows waiting behind this batch would meet the same failure: they go to the relays too.
      const queued = this.waiting.splice(0).map((waiting) => waiting.row);
      await this.release([...held, ...queued], `enqueue after commit failed: ${errorText(error)}`);
      // Redis answering means it refused the jobs (a relay then sends them one by one), else it is unreachable.
      this.metrics.enqueueFailed(held.length, await this.queue.answers().catch(() => false));
    }
  }

  /** Gives the lease up, spending no attempt, and wakes the relays; if that fails too, the lease runs out. */
  private async release(rows: readonly { id: string }[], reason: string): Promise<void> {
    for (const row of rows) this.unmarked.delete(row.id);
    await this.store
      .release(
        rows.map((row) => row.id),
        reason,
        false,
      )
      .catch(() => undefined);
    this.commits.notify();
  }

  private learn(table: RoutingTable): void {
    this.orderedTypes = new Set(Object.keys(orderedRoutesOf(table) ?? {}));
  }

  private marked(rows: DispatchedRow[]): void {
    for (const row of rows) this.toMark.push(row);
    // After `stop()`, a row flushed before it and committed after it is marked at once.
    if (this.stopped) void this.mark();
    if (this.stopped || this.markTimer) return;
    this.markTimer = setTimeout(() => {
      this.markTimer = undefined;
      void this.mark();
    }, MARK_EVERY_MS);
    this.markTimer.unref();
  }

  /** One mark statement at a time; rows enqueued meanwhile wait for the next. */
  private async mark(): Promise<void> {
    while (this.marking) await this.marking;
    const rows = this.toMark;
    if (rows.length === 0) return;
    this.toMark = [];
    this.marking = this.store
      .markDispatched(rows)
      .then(() => {
        for (const row of rows) this.unmarked.delete(row.id);
        this.stats.dispatched += rows.length;
        this.metrics.messagesDispatched(rows);
      })
      // Unmarked, the rows are sent again once their lease runs out: a no-op in BullMQ, which keeps
      // the job ids longer than the lease.
      .catch((error: unknown) => this.outage.failed(errorText(error)))
      .finally(() => {
        this.marking = undefined;
      });
    await this.marking;
  }
}

/** A committed row waiting for its send, with when it was written (its lease counts from then). */
interface Waiting {
  row: RoutableRow;
  leasedAt: number;
}

function routableRowOf(row: OutboxRow): RoutableRow {
  return {
    id: row.id,
    type: row.type,
    payload: row.payload,
    headers: row.headers,
    aggregate_type: row.aggregateType,
    aggregate_id: row.aggregateId,
    // As the database hands it to a relay: a key given to `publish()` need not be a string.
    key: row.key === null ? null : String(row.key),
    routes: {},
  };
}
