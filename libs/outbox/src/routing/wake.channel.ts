import { once } from 'node:events';
import type { RedisClient } from './redis.connection.js';
import { waitAtMost } from '../util/wait-at-most.js';

/**
 * "Rows committed" across processes: a Redis channel per producing service. Capture publishes
 * after a commit that wrote rows for a relay (not those its process sends itself), relays in other
 * processes subscribe. A burst of commits costs one publish in flight plus at most one more, and a
 * lost publish only delays rows until the next scheduled tick.
 */
export class WakeChannel {
  private publishing = false;
  private again = false;
  private subscriber: RedisClient | undefined;
  private closed = false;

  constructor(
    readonly name: string,
    /** The client publishes go through (shared with the queue). */
    private readonly publisher: () => RedisClient,
    /** A new client for listening: a subscribed client can run nothing else. */
    private readonly newSubscriber: () => RedisClient,
  ) {}

  publish(): void {
    if (this.closed) return;
    if (this.publishing) {
      this.again = true;
      return;
    }
    let client: RedisClient;
    try {
      client = this.publisher();
    } catch {
      return; // the shared client is closed: the application is shutting down
    }
    this.publishing = true;
    // The shared client fails commands at once while it connects (no offline queue): a process's
    // first commit may come before it is ready, so that one publish waits a moment for it.
    // After the committing caller has resumed, not before: the publish is not on its request's path,
    // and commits of the same turn of the event loop share it.
    const ready =
      client.status === 'ready'
        ? new Promise<void>((resolve) => setImmediate(resolve))
        : waitAtMost(once(client, 'ready'), 1000, undefined);
    ready
      .then(() => client.publish(this.name, '1'))
      .catch(() => undefined)
      .finally(() => {
        this.publishing = false;
        if (this.again) {
          this.again = false;
          this.publish();
        }
      });
  }

  /** Listens on a dedicated connection; `close()` ends it. */
  async subscribe(listener: () => void): Promise<void> {
    const connection = this.newSubscriber();
    this.subscriber = connection;
    connection.on('message', (channel: string) => {
      if (channel === this.name) listener();
    });
    // Errors (Redis down) are retried by ioredis, which re-subscribes on reconnect; the boot does
    // not wait for Redis longer than a moment: the schedule covers the time until it answers.
    connection.on('error', () => undefined);
    await waitAtMost(
      connection.subscribe(this.name).catch(() => undefined),
      2000,
      undefined,
    );
  }

  /** Stops publishing and listening (a publish held back behind one in flight is dropped). */
  close(): void {
    this.closed = true;
    this.subscriber?.disconnect();
    this.subscriber = undefined;
  }
}
