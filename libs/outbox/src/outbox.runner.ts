import { MikroORM } from '@mikro-orm/core';
import {
  Inject,
  Injectable,
  Logger,
  type BeforeApplicationShutdown,
  type OnApplicationBootstrap,
  type OnModuleInit,
} from '@nestjs/common';
import type { SchedulerRegistry } from '@nestjs/schedule';
import { OutboxCapture } from './capture/outbox.capture.js';
import { Consumer } from './consume/consumer.js';
import { HandlerExplorer } from './consume/handler.explorer.js';
import type { ResolvedOutboxOptions } from './options/outbox-options.interface.js';
import { checkOutboxSetup } from './outbox.boot-check.js';
import { handlerAbortedAtShutdown, shutdownOutOfTime } from './outbox.messages.js';
import { OUTBOX_OPTIONS, OUTBOX_SCHEDULER } from './outbox.tokens.js';
import type { DispatchOnCommit } from './relay/dispatch-on-commit.js';
import { RelayRunner, dispatchOnCommitOf } from './relay/relay.runner.js';
import { CommitSignal } from './routing/commit.signal.js';
import { OutboxQueues } from './routing/outbox-queues.js';
import { createRedis } from './routing/redis.connection.js';
import { SubscriptionRegistry } from './routing/subscription.registry.js';
import { WakeChannel } from './routing/wake.channel.js';
import { qualifiedTables } from './store/outbox.tables.js';
import { OutboxGauges } from './telemetry/outbox.gauges.js';
import { OutboxMetrics } from './telemetry/outbox.metrics.js';
import { OutboxTracing } from './telemetry/outbox.tracing.js';
import { ProcessCounters } from './telemetry/process-counters.js';
import { waitAtMost } from './util/wait-at-most.js';

/**
 * Starts and stops the outbox's stages in order, around the application's own lifecycle:
 * capture joins the ORM at init; the worker (after registering this service's handlers) and the
 * relay start once every module is ready; at shutdown they stop before MikroORM closes its pool,
 * within `shutdownTimeoutMs`.
 */
@Injectable()
export class OutboxRunner implements OnModuleInit, OnApplicationBootstrap, BeforeApplicationShutdown {
  private readonly logger = new Logger('Outbox');
  private readonly wake: WakeChannel;
  private relay: RelayRunner | undefined;
  private consumer: Consumer | undefined;
  private dispatchOnCommit: DispatchOnCommit | undefined;
  private stopPublishing: (() => void) | undefined;

  constructor(
    private readonly orm: MikroORM,
    private readonly explorer: HandlerExplorer,
    private readonly commits: CommitSignal,
    @Inject(OUTBOX_SCHEDULER) private readonly scheduler: SchedulerRegistry,
    @Inject(OUTBOX_OPTIONS) private readonly options: ResolvedOutboxOptions,
    private readonly capture: OutboxCapture,
    private readonly queues: OutboxQueues,
    private readonly registry: SubscriptionRegistry,
    private readonly counters: ProcessCounters,
    private readonly metrics: OutboxMetrics,
    private readonly tracing: OutboxTracing,
    private readonly gauges: OutboxGauges,
  ) {
    this.wake = new WakeChannel(
      queues.names.wakeChannelOf(options.service),
      () => queues.client(),
      () => createRedis(options, {}),
    );
  }

  async onModuleInit(): Promise<void> {
    await checkOutboxSetup(this.orm, this.options.tables);
    const { orm, options, queues, registry, commits, counters, metrics, tracing } = this;
    if (options.relay.dispatchOnCommit) {
      this.dispatchOnCommit = dispatchOnCommitOf({
        orm,
        options,
        queues,
        registry,
        commits,
        counters,
        metrics,
        tracing,
      });
    }
    await this.capture.attach(this.dispatchOnCommit);
    const { service, relay, worker } = this.options;
    const table = qualifiedTables(this.options.tables).outbox;
    this.logger.log(
      `Outbox of service "${service}" ready on ${table} ` +
        `(relay ${relay.enabled ? 'on' : 'off'}, sending on commit ${relay.dispatchOnCommit ? 'on' : 'off'}, ` +
        `worker ${worker.enabled ? 'on' : 'off'}).`,
    );
  }

  async onApplicationBootstrap(): Promise<void> {
    // A process without a relay tells the relays of other processes about its commits, so they
    // do not wait for their schedule (the client connects now, so the first wake-up finds it
    // ready). One with a relay moves its own rows at once: publishing too would only wake others
    // to find nothing.
    if (!this.options.relay.enabled) {
      this.queues.client();
      this.stopPublishing = this.commits.listen(() => this.wake.publish());
    }
    const { orm, options, queues, registry, commits, wake, scheduler, counters, metrics, tracing } = this;
    // Not awaited: with Redis unreachable it would hold the boot for a first connection. Until it
    // has read the table, keyed rows of ordered types are leased in vain and handed back at their send.
    void this.dispatchOnCommit?.start();
    if (options.worker.enabled) {
      this.consumer = new Consumer(
        { orm, options, queues, registry, counters: counters.worker, metrics, tracing },
        this.explorer.explore(options.worker.ordered),
      );
      await this.consumer.start();
    }
    if (options.relay.enabled) {
      this.relay = new RelayRunner({
        orm,
        options,
        queues,
        registry,
        commits,
        wake,
        scheduler,
        counters,
        metrics,
        tracing,
      });
      await this.relay.start();
    }
    this.gauges.start();
  }

  /**
   * Stops claiming, lets the batch in flight be enqueued and marked and active handlers finish,
   * all within `shutdownTimeoutMs`; past it, hands the claimed rows back and ends the handler runs
   * still going (their transactions roll back, their jobs run again elsewhere).
   * Runs before MikroORM closes its pool (in onApplicationShutdown), so the last mark can land.
   */
  async beforeApplicationShutdown(): Promise<void> {
    this.gauges.stop();
    this.stopPublishing?.();
    this.wake.close();
    const timeoutMs = this.options.shutdownTimeoutMs;
    // Handler runs commit until the consumer stopped: their rows may be sent on commit until then.
    const handled = (this.consumer?.stop() ?? Promise.resolve()).finally(() => this.dispatchOnCommit?.stop());
    const graceful = Promise.allSettled([this.relay?.stop(), handled]).then(() => true);
    if (!(await waitAtMost(graceful, timeoutMs, false))) {
      const senders = [this.relay?.loop, this.dispatchOnCommit];
      const counts = await Promise.all(senders.map((sender) => sender?.releaseInFlight().catch(() => 0) ?? 0));
      const released = counts.reduce((sum, count) => sum + count, 0);
      const stopNow = this.consumer?.stopNow(handlerAbortedAtShutdown(timeoutMs)).catch(() => undefined);
      await waitAtMost(stopNow ?? Promise.resolve(), 1000, undefined);
      this.logger.warn(shutdownOutOfTime(timeoutMs, released));
    }
    await this.queues.close();
  }

  /** Resolves when this process's relay has no drain running. */
  async relayIdle(): Promise<void> {
    await this.relay?.loop.idle();
  }
}
