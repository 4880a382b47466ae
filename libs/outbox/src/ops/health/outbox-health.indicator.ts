import { Inject, Injectable } from '@nestjs/common';
import { HealthIndicatorService, type HealthIndicatorResult } from '@nestjs/terminus';
import type { ResolvedOutboxOptions } from '../../options/outbox-options.interface.js';
import { healthTimedOut } from '../../outbox.messages.js';
import { OUTBOX_OPTIONS } from '../../outbox.tokens.js';
import { waitAtMost } from '../../util/wait-at-most.js';
import { OutboxDeadLetters } from '../outbox-dead-letters.js';
import { OutboxOrdering } from '../outbox-ordering.js';
import { OutboxSubscriptions } from '../outbox-subscriptions.js';
import { OutboxMonitor } from '../outbox.monitor.js';
import type { OutboxHealthDetails } from './health.figures.js';
import {
  checkTimeout,
  defaultThresholds,
  mergeThresholds,
  type OutboxHealthOptions,
  type OutboxHealthThresholds,
  type ResolvedThresholds,
} from './health.options.js';
import { readHealth, type HealthSources } from './health.reader.js';
import { verdict } from './health.verdict.js';

/** Token of the options given to `OutboxHealthModule.forRoot()`. */
export const OUTBOX_HEALTH_OPTIONS = Symbol('nest-outbox:health-options');

/**
 * A @nestjs/terminus indicator for the outbox of this service: whether this process's relay works,
 * how old the oldest due row is, expired leases, stuck rows, dead letters, held ordered keys and
 * messages waiting for a handler no live process has. Every figure is in the result; the
 * thresholds decide `down` (messages are not moving) and `degraded` (an operator is needed).
 * It reads shared stores, so it describes the service as a whole, apart from the relay line,
 * which is this process's: use it for readiness and alerts, not for a liveness probe that
 * restarts every process when the database is down.
 */
@Injectable()
export class OutboxHealthIndicator {
  private readonly thresholds: ResolvedThresholds;
  private readonly timeoutMs: number;
  private readonly sources: HealthSources;
  private readonly startedAt = Date.now();

  constructor(
    private readonly indicators: HealthIndicatorService,
    monitor: OutboxMonitor,
    deadLetters: OutboxDeadLetters,
    ordering: OutboxOrdering,
    subscriptions: OutboxSubscriptions,
    @Inject(OUTBOX_OPTIONS) options: ResolvedOutboxOptions,
    @Inject(OUTBOX_HEALTH_OPTIONS) health: OutboxHealthOptions,
  ) {
    this.thresholds = mergeThresholds(defaultThresholds(options.relay.intervalMs), health.thresholds);
    this.timeoutMs = checkTimeout(health.timeoutMs);
    this.sources = { service: options.service, monitor, deadLetters, ordering, subscriptions };
  }

  /**
   * The outbox's health under `key` (default `outbox`). `thresholds` override the module's for this
   * call, e.g. a readiness check that ignores dead letters: `isHealthy('outbox', { deadLetters: false })`.
   */
  async isHealthy<const Key extends string = 'outbox'>(
    key: Key = 'outbox' as Key,
    thresholds?: OutboxHealthThresholds,
  ): Promise<HealthIndicatorResult<Key>> {
    const limits = mergeThresholds(this.thresholds, thresholds);
    const session = this.indicators.check(key);
    const reading = await waitAtMost(readHealth(this.sources, this.startedAt), this.timeoutMs, undefined);
    if (!reading) return session.down({ service: this.sources.service, problems: [healthTimedOut(this.timeoutMs)] });
    const { status, problems } = verdict(reading, limits);
    const details: OutboxHealthDetails = { ...reading.details, problems };
    if (status === 'up') return session.up(details);
    return status === 'degraded' ? session.degraded(details) : session.down(details);
  }
}
