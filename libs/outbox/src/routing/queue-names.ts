import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';

/**
 * Every Redis name the outbox uses, in one place. On a Redis Cluster each service's queue gets a
 * hash tag of its own (`{billing}`), so BullMQ's multi-key scripts stay in one slot and services
 * spread over the nodes; registry keys share one tag.
 */
export class QueueNames {
  readonly registry: string;

  constructor(private readonly options: Pick<ResolvedOutboxOptions, 'prefix' | 'redis'>) {
    const { prefix } = options;
    this.registry = prefix.includes('{') ? `${prefix}:registry` : `{${prefix}}:registry`;
  }

  get clustered(): boolean {
    return typeof this.options.redis === 'object' && 'cluster' in this.options.redis;
  }

  /** The BullMQ queue name of a consuming service. */
  queueOf(service: string): string {
    return this.clustered && !this.options.prefix.includes('{') ? `{${service}}` : service;
  }

  get prefix(): string {
    return this.options.prefix;
  }

  /** The set of every service that ever registered handlers. */
  get services(): string {
    return `${this.registry}:services`;
  }

  /** A service's registered handlers: field `type\thandler` → `{ since, ordered }`. */
  handlersOf(service: string): string {
    return `${this.registry}:handlers:${service}`;
  }

  /** Handlers a service retired on purpose: registrations never bring them back on their own. */
  retiredOf(service: string): string {
    return `${this.registry}:retired:${service}`;
  }

  /** Each consuming service's retry policy (field service → JSON), stamped on the jobs relays add for it. */
  get retry(): string {
    return `${this.registry}:retry`;
  }

  /** Bumped on every change of any subscription, so relays re-read only when it moved. */
  get version(): string {
    return `${this.registry}:version`;
  }

  /** A service's live processes: field process id → `{ version, handlers, at }`, refreshed by heartbeat. */
  liveOf(service: string): string {
    return `${this.registry}:live:${service}`;
  }

  /** "Outbox rows committed" in a service's database, for its relays in other processes. */
  wakeChannelOf(service: string): string {
    return `${this.registry}:wake:${service}`;
  }
}
