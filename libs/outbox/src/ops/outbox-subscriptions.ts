import { Inject, Injectable } from '@nestjs/common';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { OUTBOX_LOCAL_HANDLERS, OUTBOX_OPTIONS } from '../outbox.tokens.js';
import { retryPolicyOf } from '../routing/retry-policy.js';
import {
  LIVE_STALE_MS,
  SubscriptionRegistry,
  type LiveProcess,
  type Registration,
} from '../routing/subscription.registry.js';

/** A consuming service as the registry knows it. */
export interface ServiceSubscription {
  service: string;
  /** Every handler it registered, by event type. */
  handlers: Array<{ type: string; handler: string; ordered: boolean; since: Date }>;
  /** Handlers it retired on purpose. */
  retired: string[];
  /** Its processes that sent a heartbeat lately. */
  live: LiveProcess[];
  /** Registered handlers that no live process has: their messages wait (or dead-letter) until one runs. */
  unserved: Array<{ type: string; handler: string }>;
}

/**
 * Admin view of the subscription registry: who consumes what, which processes are alive, which
 * handlers no live process can run, and the explicit step that retires a handler on purpose.
 */
@Injectable()
export class OutboxSubscriptions {
  constructor(
    private readonly registry: SubscriptionRegistry,
    @Inject(OUTBOX_OPTIONS) private readonly options: ResolvedOutboxOptions,
    @Inject(OUTBOX_LOCAL_HANDLERS) private readonly localHandlers: () => Registration[],
  ) {}

  /**
   * Registers this application's handlers as this service's subscription (retiring what
   * `retiredHandlers` names first), as a worker does when it starts: a deploy step that runs it
   * before the first consuming process starts leaves no message unrouted in between, and a
   * process without a worker can do it. Returns what it registered.
   */
  async provision(): Promise<Registration[]> {
    const { service, retiredHandlers } = this.options;
    if (retiredHandlers.length > 0) await this.registry.retire(service, retiredHandlers);
    const entries = this.localHandlers();
    await this.registry.register(service, entries, retryPolicyOf(this.options));
    return entries;
  }

  /** Every consuming service registered in this Redis. */
  async list(): Promise<ServiceSubscription[]> {
    const all = await this.registry.readAll();
    return Promise.all([...all].map(([service, entries]) => this.describe(service, entries)));
  }

  /** One service (this one by default). */
  async get(service = this.options.service): Promise<ServiceSubscription> {
    return this.describe(service, (await this.registry.readAll()).get(service) ?? []);
  }

  /**
   * Stops expecting these handlers (of this service by default) for messages routed from now on;
   * a message already waiting for one of them is no longer held for it. Processes that still have
   * them do not register them again. Returns the `type\thandler` entries removed.
   */
  retire(handlers: string[], service = this.options.service): Promise<string[]> {
    return this.registry.retire(service, handlers);
  }

  /** Lets retired handlers be registered again by the next process that has them. */
  unretire(handlers: string[], service = this.options.service): Promise<void> {
    return this.registry.unretire(service, handlers);
  }

  private async describe(
    service: string,
    entries: Array<{ type: string; handler: string; ordered: boolean; since: number }>,
  ): Promise<ServiceSubscription> {
    const [retired, live] = await Promise.all([
      this.registry.retired(service),
      this.registry.live(service, LIVE_STALE_MS),
    ]);
    const served = new Set(live.flatMap((process) => process.handlers));
    return {
      service,
      handlers: entries
        .map((entry) => ({ ...entry, since: new Date(entry.since) }))
        .sort((a, b) => a.type.localeCompare(b.type) || a.handler.localeCompare(b.handler)),
      retired,
      live,
      unserved: entries
        .filter((entry) => !served.has(`${entry.type}\t${entry.handler}`))
        .map(({ type, handler }) => ({ type, handler })),
    };
  }
}
