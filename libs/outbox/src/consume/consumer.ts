import type { MikroORM } from '@mikro-orm/core';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { createRedis } from '../routing/redis.connection.js';
import type { WorkerCounters } from '../telemetry/process-counters.js';
import type { EventRoute } from './handler.explorer.js';
import { InboxStore } from './inbox.store.js';
import { MessageProcessor } from './message.processor.js';
import { OutboxWorker } from './outbox.worker.js';

/**
 * The consuming side of one process: a BullMQ worker whose jobs run this application's
 * `@EventsHandler` classes, each in its own transaction with its inbox mark.
 */
export class Consumer {
  private readonly worker: OutboxWorker;

  constructor(
    orm: MikroORM,
    routes: ReadonlyMap<string, EventRoute>,
    options: ResolvedOutboxOptions,
    counters: WorkerCounters,
  ) {
    const processor = new MessageProcessor(orm, new InboxStore(options.tables), routes);
    this.worker = new OutboxWorker(
      processor,
      orm,
      createRedis(options, { maxRetriesPerRequest: null }),
      options,
      counters,
    );
  }

  start(): void {
    this.worker.start();
  }

  /** Lets active jobs finish, then closes the worker. */
  stop(): Promise<void> {
    return this.worker.close();
  }

  /**
   * Ends the handler runs still going (their transactions roll back; their jobs run again
   * elsewhere) and closes at once.
   */
  async stopNow(reason: string): Promise<void> {
    this.worker.abortActive(reason);
    await this.worker.forceClose();
  }
}
