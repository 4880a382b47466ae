import { MikroORM } from '@mikro-orm/core';
import { Inject, Injectable } from '@nestjs/common';
import type { Attributes, BatchObservableCallback, ObservableGauge } from '@opentelemetry/api';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { OUTBOX_OPTIONS } from '../outbox.tokens.js';
import { OutboxQueues } from '../routing/outbox-queues.js';
import { qualifiedTables } from '../store/outbox.tables.js';
import { waitAtMost } from '../util/wait-at-most.js';
import { OutboxMetrics } from './outbox.metrics.js';
import { LABEL, METRIC } from './telemetry-names.js';

interface PendingFigures {
  pending: number;
  stuck: number;
  oldest: number;
}

/** BullMQ job states reported, and the label each gets (a failed job is a dead letter). */
const JOB_STATES = [
  ['waiting', 'waiting'],
  ['prioritized', 'waiting'],
  ['waiting-children', 'waiting'],
  ['active', 'active'],
  ['delayed', 'delayed'],
  ['failed', 'dead_letter'],
] as const;

/** A scrape must not hang on a database or a Redis that does not answer. */
const READ_TIMEOUT_MS = 2000;

/**
 * The outbox's gauges, read when the MeterProvider collects (a scrape), never on the event path:
 * one SQL statement for the outbox's pending rows, in processes that run the relay, and one BullMQ
 * job count of this service's queue, in processes that run the worker. Nothing is registered
 * without a MeterProvider. A read that fails or takes too long reports nothing for that collection.
 */
@Injectable()
export class OutboxGauges {
  private readonly pendingSql: string;
  private readonly stateAttributes: Record<string, Attributes>;
  private readonly attributes: Attributes;
  private gauges: ObservableGauge[] = [];
  private oldest: ObservableGauge | undefined;
  private pending: ObservableGauge | undefined;
  private stuck: ObservableGauge | undefined;
  private jobs: ObservableGauge | undefined;

  constructor(
    private readonly orm: MikroORM,
    private readonly queues: OutboxQueues,
    @Inject(OUTBOX_OPTIONS) private readonly options: ResolvedOutboxOptions,
    private readonly metrics: OutboxMetrics,
  ) {
    const { outbox } = qualifiedTables(options.tables);
    const { maxAttempts } = options.relay;
    // One pass over the pending rows (partial index): how many, how many the relay gave up on,
    // and how long the oldest one that is due (not delayed, not given up) has waited.
    this.pendingSql = `select count(*)::int as pending,
        count(*) filter (where attempts >= ${maxAttempts})::int as stuck,
        coalesce(extract(epoch from now() - min(coalesce(available_at, occurred_at))
          filter (where attempts < ${maxAttempts} and (available_at is null or available_at <= now()))), 0)::float8
          as oldest
      from ${outbox} where dispatched_at is null`;
    this.attributes = { [LABEL.service]: options.service };
    this.stateAttributes = Object.fromEntries(
      JOB_STATES.map(([, label]) => [label, { [LABEL.service]: options.service, [LABEL.state]: label }]),
    );
  }

  start(): void {
    const { relay, worker } = this.options;
    if (!this.metrics.enabled || this.gauges.length > 0) return;
    const meter = this.metrics.meter;
    if (relay.enabled) {
      this.oldest = meter.createObservableGauge(METRIC.oldestPendingAge, {
        description: 'Age of the oldest due outbox row not yet handed to BullMQ (the relay lag).',
        unit: 's',
      });
      this.pending = meter.createObservableGauge(METRIC.pending, {
        description: 'Outbox rows not yet dispatched (delayed and stuck ones included).',
        unit: '{message}',
      });
      this.stuck = meter.createObservableGauge(METRIC.stuck, {
        description: 'Pending rows the relay gave up on after relay.maxAttempts refused enqueues.',
        unit: '{message}',
      });
      this.gauges.push(this.oldest, this.pending, this.stuck);
    }
    if (worker.enabled) {
      this.jobs = meter.createObservableGauge(METRIC.queueJobs, {
        description: 'Jobs in the queue of this service, by state; dead_letter is the failed set.',
        unit: '{job}',
      });
      this.gauges.push(this.jobs);
    }
    if (this.gauges.length > 0) meter.addBatchObservableCallback(this.observe, this.gauges);
  }

  /** Before the ORM and Redis close: a later collection must not reach for them. */
  stop(): void {
    if (this.gauges.length === 0) return;
    this.metrics.meter.removeBatchObservableCallback(this.observe, this.gauges);
    this.gauges = [];
  }

  private readonly observe: BatchObservableCallback = async (result) => {
    const [table, jobs] = await Promise.all([
      this.oldest ? waitAtMost(this.readPending(), READ_TIMEOUT_MS, undefined) : undefined,
      this.jobs ? waitAtMost(this.readJobs(), READ_TIMEOUT_MS, undefined) : undefined,
    ]);
    if (table && this.oldest && this.pending && this.stuck) {
      result.observe(this.oldest, table.oldest, this.attributes);
      result.observe(this.pending, table.pending, this.attributes);
      result.observe(this.stuck, table.stuck, this.attributes);
    }
    if (jobs && this.jobs) {
      for (const [state, count] of Object.entries(jobs)) result.observe(this.jobs, count, this.stateAttributes[state]);
    }
  };

  private async readPending(): Promise<PendingFigures | undefined> {
    try {
      const [row] = await this.orm.em.getConnection().execute<PendingFigures[]>(this.pendingSql);
      return row;
    } catch {
      return undefined; // the database is down: no figure beats a wrong one
    }
  }

  private async readJobs(): Promise<Record<string, number> | undefined> {
    try {
      const counts = await this.queues.own().getJobCounts(...JOB_STATES.map(([state]) => state));
      const byLabel: Record<string, number> = {};
      for (const [state, label] of JOB_STATES) byLabel[label] = (byLabel[label] ?? 0) + (counts[state] ?? 0);
      return byLabel;
    } catch {
      return undefined;
    }
  }
}
