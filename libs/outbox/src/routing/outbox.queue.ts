import { Inject, Injectable } from '@nestjs/common';
import { Queue } from 'bullmq';
import type { Redis } from 'ioredis';
import type { OutboxJobData } from '../message/message-headers.js';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { OutboxClosedError } from '../outbox.errors.js';
import { queueClosed } from '../outbox.messages.js';
import { OUTBOX_OPTIONS } from '../outbox.tokens.js';
import { waitAtMost } from '../util/wait-at-most.js';
import { createRedis } from './redis.connection.js';

/**
 * Owns the BullMQ queue of the outbox and its Redis client. Nothing connects until first use, so
 * an application whose boot fails leaves no socket open; the lifecycle closes both at shutdown.
 */
@Injectable()
export class OutboxQueue {
  private queue: Queue<OutboxJobData> | undefined;
  private connection: Redis | undefined;
  private closed = false;

  constructor(@Inject(OUTBOX_OPTIONS) private readonly options: ResolvedOutboxOptions) {}

  get(): Queue<OutboxJobData> {
    if (this.closed) {
      // Reopening here would leak a client that nothing closes any more.
      throw new OutboxClosedError(queueClosed());
    }
    if (!this.queue) {
      // Fails fast while Redis is down (no offline queue), so the relay backs off instead of hanging.
      this.connection = createRedis(this.options, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
      this.queue = new Queue<OutboxJobData>(this.options.queueName, {
        connection: this.connection,
        prefix: this.options.prefix,
      });
      // Without a listener an outage prints raw errors; the relay already reports it, once.
      this.queue.on('error', () => undefined);
    }
    return this.queue;
  }

  /** The queue's own Redis client, for small commands such as the wake-up publish. */
  client(): Redis {
    this.get();
    return this.connection!;
  }

  /**
   * The ids among `ids` whose job may still run: it exists and has not completed (waiting,
   * delayed, active, stalled, retried or a dead letter). A job that no longer exists was
   * completed and removed, or discarded: it cannot run again.
   */
  async mayStillRun(ids: readonly string[]): Promise<Set<string>> {
    const queue = this.get();
    const pipeline = this.client().pipeline();
    for (const id of ids) pipeline.exists(queue.toKey(id)).zscore(queue.toKey('completed'), id);
    const replies = (await pipeline.exec()) ?? [];
    const live = new Set<string>();
    ids.forEach((id, i) => {
      const [existsError, exists] = replies[2 * i];
      const [scoreError, score] = replies[2 * i + 1];
      if (existsError || scoreError) throw existsError ?? scoreError;
      if (exists === 1 && score === null) live.add(id);
    });
    return live;
  }

  /** True when Redis answers a PING within a second (a failed command was then refused, not lost in an outage). */
  async answers(): Promise<boolean> {
    return waitAtMost(
      this.client()
        .ping()
        .then(
          () => true,
          () => false,
        ),
      1000,
      false,
    );
  }

  async close(timeoutMs = 1000): Promise<void> {
    const { queue, connection } = this;
    this.closed = true;
    this.queue = undefined;
    this.connection = undefined;
    try {
      if (queue) await waitAtMost(queue.close(), timeoutMs, undefined);
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
