import { MikroORM } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import type { Queue } from 'bullmq';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { OutboxArgumentError, OutboxTimeoutError } from '../outbox.errors.js';
import { notAMessageId } from '../outbox.messages.js';
import { OUTBOX_OPTIONS } from '../outbox.tokens.js';
import { OutboxQueues } from '../routing/outbox-queues.js';
import { SubscriptionRegistry } from '../routing/subscription.registry.js';
import { qualifiedTables } from '../store/outbox.tables.js';
import { ProcessCounters, type RelayCounters, type WorkerCounters } from '../telemetry/process-counters.js';

/** Jobs of one consuming service's queue, by state. */
export interface QueueCounts {
  waiting: number;
  active: number;
  /** Retries waiting for their backoff, and messages set aside (waiting for handlers, parked behind their key). */
  delayed: number;
  completed: number;
  /** Dead letters. */
  failed: number;
}

/** How far behind this service's outbox is: its pending rows, read from PostgreSQL (all processes' relays). */
export interface OutboxBacklog {
  /** Rows not yet handed to BullMQ, including those not due yet and stuck ones. */
  pending: number;
  /** Pending rows a relay may take now or has in hand: available, not stuck. */
  due: number;
  /** How long the oldest due row has been waiting since it became available, in ms; 0 when none. */
  oldestDueMs: number;
  /** Pending rows the relay gave up on after `relay.maxAttempts` refused enqueues. */
  stuck: number;
  /** Due rows whose relay's lease ran out before it marked or released them (a relay died or hung). */
  expiredLeases: number;
  /** How long ago the oldest of those leases ran out, in ms; 0 when none. The next drain of any relay takes them. */
  oldestExpiredLeaseMs: number;
}

/** This process's relay, for a health check. */
export interface RelayActivity {
  /** Whether this process runs a relay (`relay.enabled`). */
  enabled: boolean;
  /** Its schedule, `relay.intervalMs`. */
  intervalMs: number;
  /** When it last finished a drain without error or marked a batch; `null` before it did. */
  lastActiveAt: Date | null;
}

/** Where one message is: its outbox row here, its job in each consuming service's queue, and this service's inbox. */
export interface MessageTrace {
  messageId: string;
  /** Its row in this service's outbox; `null` when another service wrote it or retention removed it. */
  row: {
    type: string;
    occurredAt: Date;
    dispatchedAt: Date | null;
    /** Services it was handed to (empty: no subscriber). */
    routedTo: string[];
    attempts: number;
    lastError: string | null;
  } | null;
  /** The job's state per consuming service: BullMQ's (`completed` means every handler ran) or `absent`. */
  jobs: Record<string, string>;
  /** Handlers of this service that finished it (its inbox). */
  handledBy: string[];
}

/** Where every message stands, read from PostgreSQL and Redis, so it covers all processes. */
export interface OutboxSnapshot {
  /** Rows in this service's outbox (retention may have removed older ones). */
  written: number;
  /** Not yet handed to BullMQ. */
  pending: number;
  /** Pending rows the relay gave up on after `relay.maxAttempts` refused enqueues; see `last_error`. */
  stuck: number;
  /** Handed to BullMQ (or found no subscriber). */
  dispatched: number;
  /** Dispatched rows no service was subscribed to; `OutboxReplay` can deliver them to one that subscribes later. */
  unrouted: number;
  /** Handler runs recorded in this service's inbox (one per message and handler). */
  handled: number;
  /** This service's own queue. */
  queue: QueueCounts;
  /** Every consuming service's queue (this one's included), by service name. */
  services: Record<string, QueueCounts>;
}

@Injectable()
export class OutboxMonitor {
  private readonly countSql: string;
  private readonly backlogSql: string;
  private readonly rowSql: string;
  private readonly inboxSql: string;

  constructor(
    private readonly orm: MikroORM,
    private readonly queues: OutboxQueues,
    private readonly registry: SubscriptionRegistry,
    @Inject(OUTBOX_OPTIONS) private readonly options: ResolvedOutboxOptions,
    private readonly counters: ProcessCounters,
  ) {
    const { outbox, inbox } = qualifiedTables(options.tables);
    this.countSql = `select
      (select count(*) from ${outbox})::int as written,
      (select count(*) from ${outbox} where dispatched_at is null)::int as pending,
      (select count(*) from ${outbox}
        where dispatched_at is null and attempts >= ${options.relay.maxAttempts})::int as stuck,
      (select count(*) from ${outbox} where routed_to = '{}')::int as unrouted,
      (select count(*) from ${inbox})::int as handled`;
    // One pass over the pending rows (the partial index), with the relay's own idea of "due" and "stuck".
    const stuck = `attempts >= ${options.relay.maxAttempts}`;
    const due = `not (${stuck}) and (available_at is null or available_at <= now())`;
    const expired = `${due} and locked_until is not null and locked_until < now()`;
    const ageMs = (column: string, where: string) =>
      `coalesce(floor(extract(epoch from now() - min(${column}) filter (where ${where})) * 1000), 0)::bigint::text`;
    this.backlogSql = `select count(*)::int as pending,
        (count(*) filter (where ${due}))::int as due,
        ${ageMs('coalesce(available_at, occurred_at)', due)} as "oldestDueMs",
        (count(*) filter (where ${stuck}))::int as stuck,
        (count(*) filter (where ${expired}))::int as "expiredLeases",
        ${ageMs('locked_until', expired)} as "oldestExpiredLeaseMs"
      from ${outbox} where dispatched_at is null`;
    this.rowSql = `select type, occurred_at as "occurredAt", dispatched_at as "dispatchedAt",
        coalesce(routed_to, '{}') as "routedTo", attempts, last_error as "lastError"
      from ${outbox} where id = ?`;
    this.inboxSql = `select handler from ${inbox} where message_id = ? order by handler`;
  }

  /** This service's pending rows: how many are due, how old the oldest is, stuck ones and expired leases. */
  async backlog(): Promise<OutboxBacklog> {
    const [row] = await this.orm.em
      .getConnection()
      .execute<Array<Omit<OutboxBacklog, 'oldestDueMs' | 'oldestExpiredLeaseMs'> & Record<string, string>>>(
        this.backlogSql,
      );
    return { ...row, oldestDueMs: Number(row.oldestDueMs), oldestExpiredLeaseMs: Number(row.oldestExpiredLeaseMs) };
  }

  /** Whether this process runs a relay and when it last showed it works. */
  relayActivity(): RelayActivity {
    const { lastActiveAt } = this.counters.relay;
    return {
      enabled: this.options.relay.enabled,
      intervalMs: this.options.relay.intervalMs,
      lastActiveAt: lastActiveAt > 0 ? new Date(lastActiveAt) : null,
    };
  }

  /** Where a message is, for an operator: its row, its job in every consuming service's queue, this inbox. */
  async trace(messageId: string): Promise<MessageTrace> {
    if (!UUID.test(messageId)) throw new OutboxArgumentError(notAMessageId(messageId));
    const connection = this.orm.em.getConnection();
    const [rows, inbox, services] = await Promise.all([
      connection.execute<Array<NonNullable<MessageTrace['row']>>>(this.rowSql, [messageId]),
      connection.execute<Array<{ handler: string }>>(this.inboxSql, [messageId]),
      this.serviceNames(),
    ]);
    const states = await Promise.all(
      services.map(async (service) => {
        const job = await this.queues.of(service).getJob(messageId);
        return [service, job ? await job.getState() : 'absent'] as const;
      }),
    );
    const row = rows[0];
    return {
      messageId,
      row: row ? { ...row, occurredAt: new Date(row.occurredAt), dispatchedAt: dateOrNull(row.dispatchedAt) } : null,
      jobs: Object.fromEntries(states),
      handledBy: inbox.map((mark: { handler: string }) => mark.handler),
    };
  }

  /**
   * What this process's relay (its rows sent on commit included) and worker did since it started
   * (other processes keep their own).
   */
  processCounters(): { relay: RelayCounters; worker: WorkerCounters } {
    return { relay: { ...this.counters.relay }, worker: { ...this.counters.worker } };
  }

  async snapshot(): Promise<OutboxSnapshot> {
    const [counts, services] = await Promise.all([this.tableCounts(), this.serviceCounts()]);
    return { ...counts, dispatched: counts.written - counts.pending, queue: services[this.options.service], services };
  }

  /**
   * True when every registered handler has run for every message: nothing pending or stuck in
   * this service's outbox, and nothing waiting, running, delayed (retried, waiting for handlers,
   * parked) or dead-lettered in any service's queue. Redis is read before and after PostgreSQL,
   * and the finished-job count must not move, so a message crossing from one store to the other
   * between the reads is not missed.
   */
  async isSettled(): Promise<boolean> {
    const before = await this.serviceCounts();
    if (!Object.values(before).every(settled)) return false;
    if ((await this.tableCounts()).pending !== 0) return false;
    const after = await this.serviceCounts();
    return Object.values(after).every(settled) && finished(before) === finished(after);
  }

  /** Resolves once `isSettled()` holds, checking every `everyMs`; rejects after `timeoutMs`, with the snapshot. */
  async waitUntilSettled(timeoutMs = 30_000, everyMs = 25): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!(await this.isSettled())) {
      if (Date.now() > deadline) {
        throw new OutboxTimeoutError(
          `The outbox did not settle within ${timeoutMs} ms: ${JSON.stringify(await this.snapshot())}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, everyMs));
    }
  }

  private async tableCounts() {
    const [counts] = await this.orm.em
      .getConnection()
      .execute<Array<{ written: number; pending: number; stuck: number; unrouted: number; handled: number }>>(
        this.countSql,
      );
    return counts;
  }

  private async serviceCounts(): Promise<Record<string, QueueCounts>> {
    const entries = await Promise.all(
      (await this.serviceNames()).map(async (service) => [service, await countsOf(this.queues.of(service))] as const),
    );
    return Object.fromEntries(entries);
  }

  /** This service and every consuming service registered in this Redis, sorted. */
  private async serviceNames(): Promise<string[]> {
    return [...new Set([this.options.service, ...(await this.registry.readAll()).keys()])].sort();
  }
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function dateOrNull(value: Date | string | null): Date | null {
  return value === null ? null : new Date(value);
}

async function countsOf(queue: Queue): Promise<QueueCounts> {
  const jobs = await queue.getJobCounts(
    'waiting',
    'active',
    'delayed',
    'completed',
    'failed',
    'prioritized',
    'waiting-children',
  );
  return {
    waiting: (jobs.waiting ?? 0) + (jobs.prioritized ?? 0) + (jobs['waiting-children'] ?? 0),
    active: jobs.active ?? 0,
    delayed: jobs.delayed ?? 0,
    completed: jobs.completed ?? 0,
    failed: jobs.failed ?? 0,
  };
}

function settled(queue: QueueCounts): boolean {
  return queue.waiting === 0 && queue.active === 0 && queue.delayed === 0 && queue.failed === 0;
}

function finished(services: Record<string, QueueCounts>): number {
  return Object.values(services).reduce((sum, queue) => sum + queue.completed + queue.failed, 0);
}
