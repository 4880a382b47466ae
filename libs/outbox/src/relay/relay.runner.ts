import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { MikroORM } from '@mikro-orm/core';
import type { SchedulerRegistry } from '@nestjs/schedule';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import type { CommitSignal } from '../routing/commit.signal.js';
import type { OutboxQueues } from '../routing/outbox-queues.js';
import type { SubscriptionRegistry } from '../routing/subscription.registry.js';
import type { WakeChannel } from '../routing/wake.channel.js';
import type { OutboxMetrics } from '../telemetry/outbox.metrics.js';
import type { OutboxTracing } from '../telemetry/outbox.tracing.js';
import type { ProcessCounters } from '../telemetry/process-counters.js';
import { DispatchOnCommit } from './dispatch-on-commit.js';
import { RelayLoop } from './relay.loop.js';
import { RelayQueue } from './relay.queue.js';
import { RelayStore } from './relay.store.js';

/** What the relay needs from the application around it. */
export interface RelayDependencies {
  orm: MikroORM;
  options: ResolvedOutboxOptions;
  queues: OutboxQueues;
  registry: SubscriptionRegistry;
  commits: CommitSignal;
  wake: WakeChannel;
  scheduler: SchedulerRegistry;
  counters: ProcessCounters;
  metrics: OutboxMetrics;
  tracing: OutboxTracing;
}

/** Names one claimer of rows: a relay loop, or a process that sends its own commits' rows. */
export function newRelayId(): string {
  return `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
}

export function relayStoreOf(orm: MikroORM, options: ResolvedOutboxOptions, relayId: string): RelayStore {
  return new RelayStore(orm, options.tables, {
    relayId,
    deleteOnDispatch: options.retention.deleteOnDispatch,
    maxAttempts: options.relay.maxAttempts,
  });
}

/** `relay.dispatchOnCommit`'s sender, with a store and a queue of its own. */
export function dispatchOnCommitOf(deps: Omit<RelayDependencies, 'wake' | 'scheduler'>): DispatchOnCommit {
  const { orm, options, queues, registry, commits, counters, metrics, tracing } = deps;
  const relayId = newRelayId();
  const queue = new RelayQueue(queues, options, tracing);
  return new DispatchOnCommit(
    relayStoreOf(orm, options, relayId),
    queue,
    registry,
    commits,
    options,
    counters.relay,
    metrics,
    relayId,
  );
}

/**
 * Runs the relay of one process: builds its loop and wakes it on this process's commits, on
 * other processes' commits (the wake channel) and on the `relay.intervalMs` schedule.
 */
export class RelayRunner {
  readonly loop: RelayLoop;
  private readonly intervalName: string;
  private stopListening: (() => void) | undefined;

  constructor(private readonly deps: RelayDependencies) {
    const { orm, options, queues, registry, counters, metrics, tracing } = deps;
    const store = relayStoreOf(orm, options, newRelayId());
    const queue = new RelayQueue(queues, options, tracing);
    this.loop = new RelayLoop(store, queue, registry, options, counters.relay, metrics);
    this.intervalName = `nest-outbox:relay:${options.service}`;
  }

  async start(): Promise<void> {
    const { commits, scheduler, wake, options } = this.deps;
    const loop = this.loop;
    this.stopListening = commits.listen(() => loop.wake());
    scheduler.addInterval(
      this.intervalName,
      setInterval(() => loop.wake(), options.relay.intervalMs),
    );
    await wake.subscribe(() => loop.wake());
    loop.wake();
  }

  /** Stops waking the loop and waits for the batch in flight to be enqueued and marked. */
  async stop(): Promise<void> {
    this.stopListening?.();
    const { scheduler } = this.deps;
    if (scheduler.doesExist('interval', this.intervalName)) scheduler.deleteInterval(this.intervalName);
    await this.loop.stop();
  }
}
