import { Inject, Injectable } from '@nestjs/common';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { OutboxJobData } from './message/message-headers.js';
import { OutboxError } from './outbox.errors.js';
import { OUTBOX_OPTIONS, type ResolvedOutboxOptions } from './outbox.options.js';
import { createRedis } from './outbox.redis.js';
import { within } from './outbox.timeout.js';

/**
 * Owns the BullMQ queue of the outbox and its Redis client. Nothing connects until first use, so
 * an application whose boot fails leaves no socket open; the lifecycle closes both at shutdown.
 */
@Injectable()
export class OutboxQueue {
  private queue: Queue<OutboxJobData> | undefined;
  private connection: Redis | undefined;
  private closed = false;

  constructor(@Inject(OUTBOX_OPTIONS) protected readonly options: ResolvedOutboxOptions) {}

  get(): Queue<OutboxJobData> {
    if (this.closed) {
      // Reopening here would leak a client that nothing closes any more.
      throw new OutboxError('The outbox queue is closed: the application is shutting down.');
    }
    if (!this.queue) {
      // Fails fast while Redis is down (no offline queue), so the relay backs off instead of hanging.
      this.connection = createRedis(this.options, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
      this.queue = this.create(this.options.queueName, this.connection);
    }
    return this.queue;
  }

  /** The queue's own Redis client, for small commands such as the wake-up publish. */
  client(): Redis {
    this.get();
    return this.connection!;
  }

  /** Builds the queue; a subclass may return its own (fault-injection tests do). */
  protected create(name: string, connection: Redis): Queue<OutboxJobData> {
    const queue = new Queue<OutboxJobData>(name, { connection, prefix: this.options.prefix });
    // Without a listener an outage prints raw errors; the relay already reports it, once.
    queue.on('error', () => undefined);
    return queue;
  }

  async close(timeoutMs = 1000): Promise<void> {
    const { queue, connection } = this;
    this.closed = true;
    this.queue = undefined;
    this.connection = undefined;
    try {
      if (queue) await within(queue.close(), timeoutMs, undefined);
    } finally {
      connection?.disconnect();
    }
  }
}

/**
 * Nest awaits factory results (`then`) and probes every provider for lifecycle hooks; answering
 * those would connect at boot and reconnect after shutdown. The queue has none of them.
 */
const NOT_QUEUE_KEYS = new Set<string | symbol>([
  'then',
  'onModuleInit',
  'onApplicationBootstrap',
  'onModuleDestroy',
  'beforeApplicationShutdown',
  'onApplicationShutdown',
]);

/**
 * The value of the `OUTBOX_QUEUE` token: the outbox's BullMQ queue, connected on first use.
 * Reads and writes go to the queue `OutboxQueue` owns, so there is one queue and one client.
 */
export function lazyQueue(owner: OutboxQueue): Queue<OutboxJobData> {
  return new Proxy({} as Queue<OutboxJobData>, {
    get(_, property) {
      if (NOT_QUEUE_KEYS.has(property)) return undefined;
      const queue = owner.get();
      const value: unknown = Reflect.get(queue, property, queue);
      return typeof value === 'function' ? value.bind(queue) : value;
    },
    set(_, property, value) {
      return Reflect.set(owner.get(), property, value);
    },
  });
}
