import { hostname } from 'node:os';
import type { MikroORM } from '@mikro-orm/core';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { moveToFront } from '../routing/move-to-front.js';
import type { OutboxQueues } from '../routing/outbox-queues.js';
import { createRedis } from '../routing/redis.connection.js';
import type { SubscriptionRegistry } from '../routing/subscription.registry.js';
import type { OutboxMetrics } from '../telemetry/outbox.metrics.js';
import type { OutboxTracing } from '../telemetry/outbox.tracing.js';
import type { WorkerCounters } from '../telemetry/process-counters.js';
import { CommitWatch } from './commit-watch.js';
import type { EventRoute } from './handler.explorer.js';
import { HandlerRunner } from './handler.runner.js';
import { InboxStore } from './inbox.store.js';
import { KeyOrderStore } from './key-order.store.js';
import { MessageProcessor } from './message.processor.js';
import { OutboxWorker } from './outbox.worker.js';
import { ServiceRegistration } from './service.registration.js';

/** Consumers started in this Node process so far; names the second and later ones apart. */
let consumersInProcess = 0;

/**
 * `host:pid`, and `host:pid#n` for the n-th consumer of one process: each keeps its own heartbeat
 * record, so a second application in the same process (a test's newer build, a host running two)
 * neither overwrites the first one's handlers nor removes them when it leaves.
 */
function consumerProcessId(): string {
  consumersInProcess++;
  const base = `${hostname()}:${process.pid}`;
  return consumersInProcess === 1 ? base : `${base}#${consumersInProcess}`;
}

/** What the consuming side needs from the application around it. */
export interface ConsumerDependencies {
  orm: MikroORM;
  options: ResolvedOutboxOptions;
  queues: OutboxQueues;
  registry: SubscriptionRegistry;
  counters: WorkerCounters;
  metrics: OutboxMetrics;
  tracing: OutboxTracing;
}

/**
 * The consuming side of one process: registers this service's handlers, then runs a BullMQ worker
 * on the service's queue whose jobs run the application's `@EventsHandler` classes, each in its own
 * transaction with its inbox mark.
 */
export class Consumer {
  private readonly worker: OutboxWorker;
  private readonly registration: ServiceRegistration;
  private readonly commits: CommitWatch;

  constructor(deps: ConsumerDependencies, routes: ReadonlyMap<string, EventRoute>) {
    const { orm, options, queues, registry, counters, metrics, tracing } = deps;
    this.commits = new CommitWatch(orm);
    const queueName = queues.names.queueOf(options.service);
    const runner = new HandlerRunner(
      orm,
      new InboxStore(options.tables),
      new KeyOrderStore(options.tables),
      { metrics, tracing, service: options.service, queue: queueName },
      this.commits,
      options.worker.handlersPerTransaction,
    );
    const promote = async (messageId: string) => {
      const job = await queues.own().getJob(messageId);
      if (job) await moveToFront(job);
    };
    const processor = new MessageProcessor(routes, runner, promote);
    const identity = { service: options.service, process: consumerProcessId(), version: options.version };
    this.registration = new ServiceRegistration(registry, options, routes, identity.process);
    const registration = this.registration;
    this.worker = new OutboxWorker(
      processor,
      orm,
      createRedis(options, { maxRetriesPerRequest: null }),
      queueName,
      options,
      identity,
      (type, handlers) => registration.stillExpected(type, handlers),
      counters,
      metrics,
    );
  }

  async start(): Promise<void> {
    await this.commits.start();
    await this.registration.start();
    this.worker.start();
  }

  /** Lets active jobs finish, then closes the worker. */
  async stop(): Promise<void> {
    await Promise.all([this.worker.close(), this.registration.stop()]);
    this.commits.stop();
  }

  /**
   * Ends the handler runs still going (their transactions roll back; their jobs run again
   * elsewhere) and closes at once.
   */
  async stopNow(reason: string): Promise<void> {
    this.worker.abortActive(reason);
    await Promise.all([this.worker.forceClose(), this.registration.stop()]);
    this.commits.stop();
  }
}
