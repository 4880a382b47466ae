import { Injectable } from '@nestjs/common';
import { OutboxQueues } from './outbox-queues.js';
import type { RetryPolicy } from './retry-policy.js';

/** One handler a service registered for an event type. */
export interface HandlerSubscription {
  /** The handler's class name (its inbox key). */
  name: string;
  /** Its messages of one key run in commit order. */
  ordered: boolean;
  /** When it was first registered (ms since epoch, Redis time). */
  since: number;
}

/** The handlers one service expects to run for a type. */
export interface ServiceRoute {
  service: string;
  handlers: HandlerSubscription[];
  /** How the service retries its messages; absent when only older builds registered it. */
  retry?: RetryPolicy;
}

/** Event type → the services subscribed to it, and which of their handlers each message needs. */
export type RoutingTable = ReadonlyMap<string, readonly ServiceRoute[]>;

/** A process of a consuming service, as its last heartbeat described it. */
export interface LiveProcess {
  id: string;
  version: string;
  /** `type\thandler` of every handler it runs. */
  handlers: string[];
  /** Last heartbeat, ms since epoch. */
  at: number;
}

export interface Registration {
  type: string;
  handler: string;
  ordered: boolean;
}

const SEPARATOR = '\t';

/** How often a consuming process says it is alive (and registers its handlers again). */
export const HEARTBEAT_MS = 5000;
/** A process whose heartbeat is older than this is taken for dead. */
export const LIVE_STALE_MS = 3 * HEARTBEAT_MS;

/**
 * Adds handlers to a service's subscription, never removes any: a process of an older build that
 * lacks a handler registers what it has, and the newer build's handler stays expected. A retired
 * handler is not added back. A handler becomes ordered when a build registers it ordered; only
 * retiring it undoes that. The service's retry policy is the one its latest registration gave.
 */
const REGISTER = `
local changed = 0
redis.call('SADD', KEYS[1], ARGV[1])
if redis.call('HGET', KEYS[5], ARGV[1]) ~= ARGV[2] then
  redis.call('HSET', KEYS[5], ARGV[1], ARGV[2])
  changed = 1
end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
for i = 3, #ARGV, 2 do
  local field, ordered = ARGV[i], ARGV[i + 1] == '1'
  local current = redis.call('HGET', KEYS[2], field)
  if redis.call('SISMEMBER', KEYS[4], string.match(field, '\\t(.+)$')) == 1 then
    -- retired on purpose
  elseif not current then
    redis.call('HSET', KEYS[2], field, cjson.encode({ since = ms, ordered = ordered }))
    changed = 1
  elseif ordered and not cjson.decode(current).ordered then
    local entry = cjson.decode(current)
    entry.ordered = true
    redis.call('HSET', KEYS[2], field, cjson.encode(entry))
    changed = 1
  end
end
if changed == 1 then redis.call('INCR', KEYS[3]) end
return changed`;

/** Removes every field of the named handlers (any type) and remembers them retired; returns the fields removed. */
const RETIRE = `
local removed = {}
local wanted = {}
for i = 1, #ARGV do
  wanted[ARGV[i]] = true
  redis.call('SADD', KEYS[3], ARGV[i])
end
for _, field in ipairs(redis.call('HKEYS', KEYS[1])) do
  local handler = string.match(field, '\\t(.+)$')
  if handler and wanted[handler] then
    redis.call('HDEL', KEYS[1], field)
    table.insert(removed, field)
  end
end
if #removed > 0 then redis.call('INCR', KEYS[2]) end
return removed`;

/**
 * The subscription registry, in Redis where producers and consumers meet: each consuming service
 * registers the handlers it has (at boot, idempotent), relays read it to route every message to
 * the queue of every subscribed service, and stamp each job with the handlers it needs. A service
 * that is down stays subscribed, so its messages wait in its queue.
 */
@Injectable()
export class SubscriptionRegistry {
  private cached: { version: string; table: RoutingTable } | undefined;

  constructor(private readonly queues: OutboxQueues) {}

  /** Adds these handlers to `service`'s subscription and sets its retry policy (idempotent); true on any change. */
  async register(service: string, entries: readonly Registration[], retry: RetryPolicy): Promise<boolean> {
    if (entries.length === 0) return false;
    const { names } = this.queues;
    const args = entries.flatMap((entry) => [`${entry.type}${SEPARATOR}${entry.handler}`, entry.ordered ? '1' : '0']);
    const keys = [names.services, names.handlersOf(service), names.version, names.retiredOf(service), names.retry];
    const client = await this.queues.readyClient();
    const changed = await client.eval(REGISTER, keys.length, ...keys, service, JSON.stringify(retry), ...args);
    return changed === 1;
  }

  /** Removes these handlers from `service`'s subscription, on purpose; returns the `type\thandler` entries removed. */
  async retire(service: string, handlers: readonly string[]): Promise<string[]> {
    if (handlers.length === 0) return [];
    const { names } = this.queues;
    const keys = [names.handlersOf(service), names.version, names.retiredOf(service)];
    return (await (await this.queues.readyClient()).eval(RETIRE, keys.length, ...keys, ...handlers)) as string[];
  }

  /** Lets retired handlers be registered again (by the next process that has them). */
  async unretire(service: string, handlers: readonly string[]): Promise<void> {
    if (handlers.length > 0)
      await (await this.queues.readyClient()).srem(this.queues.names.retiredOf(service), ...handlers);
  }

  /** Handlers `service` retired on purpose. */
  async retired(service: string): Promise<string[]> {
    return (await (await this.queues.readyClient()).smembers(this.queues.names.retiredOf(service))).sort();
  }

  /**
   * Every service's subscription as a routing table, read again only when the registry's version
   * moved since the last call: one GET per call while nothing changes. `version` is `null` when no
   * service ever registered under this prefix — or Redis lost the registry: then nothing can be
   * said about who subscribes, and relays hold their rows until a consumer registers again.
   */
  async routes(): Promise<{ version: string | null; table: RoutingTable }> {
    const client = await this.queues.readyClient();
    const version = await client.get(this.queues.names.version);
    if (version === null) {
      this.cached = undefined;
      return { version, table: new Map() };
    }
    if (this.cached?.version === version) return this.cached;
    const table = new Map<string, ServiceRoute[]>();
    const policies = await client.hgetall(this.queues.names.retry);
    for (const [service, entries] of await this.readAll()) {
      const retry = policies[service] ? (JSON.parse(policies[service]) as RetryPolicy) : undefined;
      const byType = new Map<string, HandlerSubscription[]>();
      for (const entry of entries) {
        const handlers = byType.get(entry.type) ?? [];
        handlers.push({ name: entry.handler, ordered: entry.ordered, since: entry.since });
        byType.set(entry.type, handlers);
      }
      for (const [type, handlers] of byType) {
        const routes = table.get(type) ?? [];
        routes.push({
          service,
          handlers: handlers.sort((a, b) => a.name.localeCompare(b.name)),
          ...(retry ? { retry } : {}),
        });
        table.set(type, routes);
      }
    }
    this.cached = { version, table };
    return this.cached;
  }

  /**
   * The table as last read, without asking Redis; read once when there is none. For a guess that
   * is checked later: the relay claims with it and routes with `routes()` read after the claim.
   */
  async lastRoutes(): Promise<{ version: string | null; table: RoutingTable }> {
    return this.cached ?? this.routes();
  }

  /** Every registered service and its handlers. */
  async readAll(): Promise<Map<string, Array<Registration & { since: number }>>> {
    const client = await this.queues.readyClient();
    const { names } = this.queues;
    const services = (await client.smembers(names.services)).sort();
    const pipeline = client.pipeline();
    for (const service of services) pipeline.hgetall(names.handlersOf(service));
    const replies = (await pipeline.exec()) ?? [];
    const all = new Map<string, Array<Registration & { since: number }>>();
    services.forEach((service, i) => {
      const [error, hash] = replies[i];
      if (error) throw error;
      all.set(
        service,
        Object.entries((hash ?? {}) as Record<string, string>).map(([field, value]) => parseEntry(field, value)),
      );
    });
    return all;
  }

  /** Says this process is alive and which handlers it runs; old entries of dead processes are pruned on read. */
  async heartbeat(service: string, process: Omit<LiveProcess, 'at'>): Promise<void> {
    const client = await this.queues.readyClient();
    const time = await client.time();
    const at = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
    await client.hset(this.queues.names.liveOf(service), process.id, JSON.stringify({ ...process, at }));
  }

  /** Processes of `service` whose last heartbeat is younger than `staleMs`; older entries are removed. */
  async live(service: string, staleMs: number): Promise<LiveProcess[]> {
    const client = await this.queues.readyClient();
    const key = this.queues.names.liveOf(service);
    const [hash, time] = await Promise.all([client.hgetall(key), client.time()]);
    const now = Number(time[0]) * 1000 + Math.floor(Number(time[1]) / 1000);
    const live: LiveProcess[] = [];
    const stale: string[] = [];
    for (const [id, value] of Object.entries(hash)) {
      const entry = { id, ...(JSON.parse(value) as Omit<LiveProcess, 'id'>) };
      if (now - entry.at > staleMs) stale.push(id);
      else live.push(entry);
    }
    if (stale.length > 0) await client.hdel(key, ...stale);
    return live;
  }

  /** Removes this process from its service's live list (at shutdown). */
  async leave(service: string, processId: string): Promise<void> {
    await (await this.queues.readyClient()).hdel(this.queues.names.liveOf(service), processId);
  }
}

function parseEntry(field: string, value: string): Registration & { since: number } {
  const at = field.indexOf(SEPARATOR);
  const { since, ordered } = JSON.parse(value) as { since: number; ordered: boolean };
  return { type: field.slice(0, at), handler: field.slice(at + 1), since, ordered };
}
