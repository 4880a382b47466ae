import { once } from 'node:events';
import { Inject, Injectable } from '@nestjs/common';
import { Queue } from 'bullmq';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { OutboxClosedError } from '../outbox.errors.js';
import { queueClosed } from '../outbox.messages.js';
import { OUTBOX_OPTIONS } from '../outbox.tokens.js';
import { waitAtMost } from '../util/wait-at-most.js';
import type { OutboxJobData } from './job-data.js';
import { QueueNames } from './queue-names.js';
import { createRedis, type RedisClient } from './redis.connection.js';

/**
 * Owns the BullMQ queues the outbox talks to — this service's own and those of the services it
 * delivers to — and the one Redis client they share. Nothing connects until first use, so an
 * application whose boot fails leaves no socket open; the runner closes everything at shutdown.
 */
@Injectable()
export class OutboxQueues {
  readonly names: QueueNames;
  private readonly queues = new Map<string, Queue<OutboxJobData>>();
  private connection: RedisClient | undefined;
  private closed = false;

  constructor(@Inject(OUTBOX_OPTIONS) private readonly options: ResolvedOutboxOptions) {
    this.names = new QueueNames(options);
  }

  /** This service's own queue: the one its worker consumes and its dead letters live in. */
  own(): Queue<OutboxJobData> {
    return this.of(this.options.service);
  }

  /** The queue of a consuming service. */
  of(service: string): Queue<OutboxJobData> {
    const existing = this.queues.get(service);
    if (existing) return existing;
    const queue = new Queue<OutboxJobData>(this.names.queueOf(service), {
      connection: this.client(),
      prefix: this.names.prefix,
    });
    // Without a listener an outage prints raw errors; the relay already reports it, once.
    queue.on('error', () => undefined);
    this.queues.set(service, queue);
    return queue;
  }

  /** The shared client, for small commands (registry reads, wake-up publishes). */
  client(): RedisClient {
    if (this.closed) {
      // Reopening here would leak a client that nothing closes any more.
      throw new OutboxClosedError(queueClosed());
    }
    // Fails fast while Redis is down (no offline queue), so callers back off instead of hanging.
    this.connection ??= createRedis(this.options, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    return this.connection;
  }

  /**
   * The shared client once it is connected, waiting at most `timeoutMs` for it: it fails commands
   * at once while connecting (no offline queue), which is right in an outage and wrong at boot.
   */
  async readyClient(timeoutMs = 2000): Promise<RedisClient> {
    const client = this.client();
    // Only a first connection is waited for; in an outage (reconnecting) commands fail at once.
    const first = client.status === 'wait' || client.status === 'connecting' || client.status === 'connect';
    if (first) await waitAtMost(once(client, 'ready'), timeoutMs, undefined);
    return client;
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

  /**
   * The ids among `ids` whose job in this service's queue may still run: it exists and has not
   * completed (waiting, delayed, active, stalled, retried or a dead letter). A job that no longer
   * exists was completed and removed, or discarded: it cannot run again.
   */
  async mayStillRun(ids: readonly string[]): Promise<Set<string>> {
    const queue = this.own();
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

  async close(timeoutMs = 1000): Promise<void> {
    const queues = [...this.queues.values()];
    const connection = this.connection;
    this.closed = true;
    this.queues.clear();
    this.connection = undefined;
    try {
      await waitAtMost(Promise.all(queues.map((queue) => queue.close())), timeoutMs, undefined);
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
 * The value of the `OUTBOX_QUEUE` token: this service's BullMQ queue, connected on first use.
 * Reads and writes go to the queue `OutboxQueues` owns, so there is one queue and one client.
 */
export function lazyOwnQueue(owner: OutboxQueues): Queue<OutboxJobData> {
  return new Proxy({} as Queue<OutboxJobData>, {
    get(_, property) {
      if (NOT_QUEUE_KEYS.has(property)) return undefined;
      const queue = owner.own();
      const value: unknown = Reflect.get(queue, property, queue);
      return typeof value === 'function' ? value.bind(queue) : value;
    },
    set(_, property, value) {
      return Reflect.set(owner.own(), property, value);
    },
  });
}
