import { Logger } from '@nestjs/common';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { retryPolicyOf } from '../routing/retry-policy.js';
import {
  HEARTBEAT_MS,
  LIVE_STALE_MS,
  type Registration,
  type SubscriptionRegistry,
} from '../routing/subscription.registry.js';
import { errorText } from '../util/error-text.js';
import type { EventRoute } from './handler.explorer.js';

/** The registry entries of the handlers found in this application, one per (type, handler). */
export function registrationsOf(routes: ReadonlyMap<string, EventRoute>): Registration[] {
  return [...routes].flatMap(([type, route]) =>
    route.handlers.map((handler) => ({ type, handler: handler.name, ordered: handler.ordered })),
  );
}

/**
 * Keeps this service's subscription in the registry: its handlers, registered before the worker
 * takes a job and again with every heartbeat (so a registry lost with Redis heals itself), the
 * handlers it retires on purpose, and this process on the list of live ones.
 */
export class ServiceRegistration {
  private readonly logger = new Logger('OutboxSubscription');
  private readonly entries: Registration[];
  private timer: NodeJS.Timeout | undefined;
  private failing = false;

  constructor(
    private readonly registry: SubscriptionRegistry,
    private readonly options: ResolvedOutboxOptions,
    routes: ReadonlyMap<string, EventRoute>,
    private readonly processId: string,
  ) {
    this.entries = registrationsOf(routes);
  }

  /** Retires what the options retire, registers this process's handlers and starts the heartbeat. */
  async start(): Promise<void> {
    const { service, retiredHandlers } = this.options;
    try {
      if (retiredHandlers.length > 0) await this.registry.retire(service, retiredHandlers);
      await this.beat();
    } catch (error) {
      // Redis down at boot: the heartbeat keeps trying, and jobs need Redis anyway.
      this.report(error);
    }
    this.timer = setInterval(() => void this.beat().catch((error: unknown) => this.report(error)), HEARTBEAT_MS);
    this.timer.unref();
  }

  /**
   * Of `handlers` a message of `type` waits for, those still expected: registered, or retired since
   * the message was routed but still run by a live process of this service (an older build) — a
   * retire step does not take a handler from messages that asked for it while one can run it.
   * `served` says whether another live process has every expected one: the message then comes
   * back soon instead of after a growing delay.
   */
  async stillExpected(type: string, handlers: string[]): Promise<{ expected: string[]; served: boolean }> {
    const { service } = this.options;
    const [{ table }, live] = await Promise.all([this.registry.routes(), this.registry.live(service, LIVE_STALE_MS)]);
    const route = table.get(type)?.find((candidate) => candidate.service === service);
    const others = new Set(live.filter((peer) => peer.id !== this.processId).flatMap((peer) => peer.handlers));
    const isServed = (name: string) => others.has(`${type}\t${name}`);
    const expected = handlers.filter(
      (name) => route?.handlers.some((handler) => handler.name === name) || isServed(name),
    );
    return { expected, served: expected.length > 0 && expected.every(isServed) };
  }

  async stop(): Promise<void> {
    clearInterval(this.timer);
    await this.registry.leave(this.options.service, this.processId).catch(() => undefined);
  }

  private async beat(): Promise<void> {
    const { service, version } = this.options;
    await this.registry.register(service, this.entries, retryPolicyOf(this.options));
    const handlers = this.entries.map((entry) => `${entry.type}\t${entry.handler}`);
    await this.registry.heartbeat(service, { id: this.processId, version, handlers });
    if (this.failing) this.logger.log(`Subscription of ${service} registered again.`);
    this.failing = false;
  }

  private report(error: unknown): void {
    if (this.failing) return;
    this.failing = true;
    this.logger.error(
      `Cannot register the subscription of ${this.options.service} in Redis (${errorText(error)}); ` +
        `retrying every ${HEARTBEAT_MS} ms. Messages are routed to its handlers once it is registered.`,
    );
  }
}
