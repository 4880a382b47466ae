import type { Redis } from 'ioredis';
import { within } from './outbox.timeout.js';

/**
 * "Rows committed" across processes: a Redis channel per queue. Capture publishes after a commit
 * that wrote rows, relays in other processes subscribe. A burst of commits costs one publish in
 * flight plus at most one more, and a lost publish only delays rows until the next scheduled tick.
 */
export class WakeChannel {
  private publishing = false;
  private again = false;
  private subscriber: Redis | undefined;

  constructor(
    readonly name: string,
    private readonly publisher: () => Redis,
  ) {}

  publish(): void {
    if (this.publishing) {
      this.again = true;
      return;
    }
    this.publishing = true;
    this.publisher()
      .publish(this.name, '1')
      .catch(() => undefined)
      .finally(() => {
        this.publishing = false;
        if (this.again) {
          this.again = false;
          this.publish();
        }
      });
  }

  /** Listens on a dedicated connection (a subscribed client can run nothing else). */
  async subscribe(connection: Redis, listener: () => void): Promise<void> {
    this.subscriber = connection;
    connection.on('message', (channel: string) => {
      if (channel === this.name) listener();
    });
    // Errors (Redis down) are retried by ioredis, which re-subscribes on reconnect; the boot does
    // not wait for Redis longer than a moment: the schedule covers the time until it answers.
    connection.on('error', () => undefined);
    await within(connection.subscribe(this.name).catch(() => undefined), 2000, undefined);
  }

  close(): void {
    this.subscriber?.disconnect();
    this.subscriber = undefined;
  }
}
