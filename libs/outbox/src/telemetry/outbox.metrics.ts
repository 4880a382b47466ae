import { Inject, Injectable } from '@nestjs/common';
import {
  createNoopMeter,
  metrics,
  type Attributes,
  type Counter,
  type Histogram,
  type Meter,
} from '@opentelemetry/api';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { OUTBOX_OPTIONS } from '../outbox.tokens.js';
import { LABEL, METRIC, SCOPE } from './telemetry-names.js';

/** What became of one handler run, as the metrics count it. */
export type RunResult = 'handled' | 'failed';

/** Why a message became a dead letter (as `DeadLetter.reason` says it). */
export type DeadLetterCause = 'handler-failed' | 'unreadable' | 'handlers-missing' | 'still-failing' | 'worker-died';

// Seconds. A handler is one transaction (ms to s); end to end spans the relay, the queue and retries.
const HANDLER_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const MAX_ATTRIBUTE_SETS = 10_000;
const END_TO_END_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600];

/**
 * The outbox's counters and histograms, through the OpenTelemetry API only: the application picks
 * the SDK and the exporter. Instruments are created once, from the MeterProvider registered when
 * the module is built, so the SDK must be started before the Nest application is created.
 *
 * Without a MeterProvider every method returns at its first line: capture and the worker pay a
 * property read per event, and build no attributes and read no clock.
 */
@Injectable()
export class OutboxMetrics {
  /** A MeterProvider is registered: the stages measure. */
  readonly enabled: boolean;
  readonly meter: Meter;
  private readonly service: string;
  private readonly written: Counter;
  private readonly dispatchedCount: Counter;
  private readonly unrouted: Counter;
  private readonly enqueueFailures: Counter;
  private readonly handled: Counter;
  private readonly failed: Counter;
  private readonly deadLettered: Counter;
  private readonly handlerDuration: Histogram;
  private readonly endToEnd: Histogram;
  /** Attribute sets, made once per combination: a data point then costs no allocation. */
  private readonly attributeSets = new Map<string, Attributes>();

  constructor(@Inject(OUTBOX_OPTIONS) options: Pick<ResolvedOutboxOptions, 'service'>) {
    this.service = options.service;
    this.meter = metrics.getMeter(SCOPE);
    this.enabled = this.meter !== createNoopMeter();
    const counter = (name: string, description: string) =>
      this.meter.createCounter(name, { description, unit: '{message}' });
    this.written = counter(METRIC.written, 'Outbox rows committed, by event type.');
    this.dispatchedCount = counter(METRIC.dispatched, 'Messages handed to the queue of a consuming service.');
    this.unrouted = counter(METRIC.unrouted, 'Messages dispatched with no subscribed service.');
    this.enqueueFailures = counter(
      METRIC.enqueueFailed,
      'Claimed rows, or rows sent on commit, whose enqueue failed and were handed back.',
    );
    this.handled = counter(METRIC.handled, 'Handler runs that committed, with their inbox mark.');
    this.failed = counter(METRIC.failed, 'Handler runs that threw (each attempt counts).');
    this.deadLettered = counter(METRIC.deadLettered, 'Messages given up on, per failing handler.');
    this.handlerDuration = this.meter.createHistogram(METRIC.handlerDuration, {
      description: 'One handler run: its transaction, inbox mark and the handler itself.',
      unit: 's',
      advice: { explicitBucketBoundaries: HANDLER_BUCKETS },
    });
    this.endToEnd = this.meter.createHistogram(METRIC.endToEnd, {
      description: 'From the capture of the event (headers.occurredAt) to the commit of its handler.',
      unit: 's',
      advice: { explicitBucketBoundaries: END_TO_END_BUCKETS },
    });
  }

  /** Rows of these types committed (called once per commit that wrote rows). */
  messagesWritten(types: readonly string[]): void {
    if (!this.enabled) return;
    for (const type of types) this.written.add(1, this.attributes(type));
  }

  /** Rows marked dispatched, each to the services it was routed to (none: unrouted). */
  messagesDispatched(rows: ReadonlyArray<{ type: string; routedTo: readonly string[] }>): void {
    if (!this.enabled) return;
    for (const { type, routedTo } of rows) {
      if (routedTo.length === 0) this.unrouted.add(1, this.attributes(type));
      for (const consumer of routedTo) this.dispatchedCount.add(1, this.attributes(type, '', consumer));
    }
  }

  /** Claimed rows handed back after their enqueue failed: Redis refused them, or did not answer. */
  enqueueFailed(rows: number, refused: boolean): void {
    if (!this.enabled) return;
    this.enqueueFailures.add(rows, this.attributes('', '', '', refused ? 'refused' : 'unavailable'));
  }

  /** `performance.now()` when measuring, else 0 (no clock read). */
  startTimer(): number {
    return this.enabled ? performance.now() : 0;
  }

  /** One handler run that handled or failed (duplicates and parked runs are not handler work). */
  handlerRun(type: string, handler: string, result: RunResult, startedAt: number, occurredAt: string): void {
    if (!this.enabled) return;
    const seconds = (performance.now() - startedAt) / 1000;
    const attributes = this.attributes(type, handler);
    this.handlerDuration.record(seconds, this.attributes(type, handler, '', '', result));
    if (result === 'failed') {
      this.failed.add(1, attributes);
      return;
    }
    this.handled.add(1, attributes);
    const occurred = Date.parse(occurredAt);
    if (Number.isFinite(occurred)) this.endToEnd.record(Math.max(0, Date.now() - occurred) / 1000, attributes);
  }

  /** A message given up on: once per failing handler, or once without a handler. */
  messageDeadLettered(type: string, cause: DeadLetterCause, handlers: readonly string[]): void {
    if (!this.enabled) return;
    if (handlers.length === 0) this.deadLettered.add(1, this.attributes(type, '', '', cause));
    for (const handler of handlers) this.deadLettered.add(1, this.attributes(type, handler, '', cause));
  }

  /** The attribute set of one combination; empty parts are left out. */
  private attributes(type: string, handler = '', consumer = '', reason = '', outcome = ''): Attributes {
    const key = `${type}\n${handler}\n${consumer}\n${reason}\n${outcome}`;
    let set = this.attributeSets.get(key);
    if (!set) {
      set = { [LABEL.service]: this.service };
      if (type) set[LABEL.type] = type;
      if (handler) set[LABEL.handler] = handler;
      if (consumer) set[LABEL.consumer] = consumer;
      if (reason) set[LABEL.reason] = reason;
      if (outcome) set[LABEL.outcome] = outcome;
      // Types come from jobs, which anyone can add: the cache must not grow without bound.
      if (this.attributeSets.size < MAX_ATTRIBUTE_SETS) this.attributeSets.set(key, set);
    }
    return set;
  }
}
