import { Inject, Injectable } from '@nestjs/common';
import type { Job } from 'bullmq';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { OUTBOX_LOCAL_HANDLERS, OUTBOX_OPTIONS } from '../outbox.tokens.js';
import type { OutboxJobData } from '../routing/job-data.js';
import { OutboxQueues } from '../routing/outbox-queues.js';
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

/** Messages of a consuming service that wait for a handler none of its live processes has. */
export interface WaitingForHandlers {
  service: string;
  /** Registered handlers no live process has (`ServiceSubscription.unserved`). */
  handlers: Array<{ type: string; handler: string }>;
  /**
   * Messages in its queue that need one of them: handed back by a process that lacked it (delayed,
   * with `waitingSince`), or — when no process of the service is alive — still waiting to be taken.
   */
  messages: number;
  /** When the oldest of them started waiting; `null` when none. */
  oldestSince: Date | null;
  /** False when the queue held more jobs than were looked at (`scanLimit` per state): `messages` is then a floor. */
  complete: boolean;
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
    private readonly queues: OutboxQueues,
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
   * The messages of a service (this one by default) that wait for a handler no live process has —
   * after a rollback to a build without it, or while every process of the service is down. Reads
   * at most `scanLimit` jobs per state, and none when every registered handler is served.
   */
  async waiting(service = this.options.service, scanLimit = 500): Promise<WaitingForHandlers> {
    const { handlers, live } = await this.get(service);
    const served = new Set(live.flatMap((process) => process.handlers));
    const unserved = handlers.filter((entry) => !served.has(`${entry.type}\t${entry.handler}`));
    const waiting: WaitingForHandlers = { service, handlers: [], messages: 0, oldestSince: null, complete: true };
    if (unserved.length === 0) return waiting;
    waiting.handlers = unserved.map(({ type, handler }) => ({ type, handler }));
    const queue = this.queues.of(service);
    // With a live process, a job in `waiting` is simply next in line; only jobs it handed back wait for a handler.
    const states = live.length === 0 ? (['delayed', 'waiting'] as const) : (['delayed'] as const);
    const counts = await queue.getJobCounts(...states);
    const jobs = (await Promise.all(states.map((state) => queue.getJobs([state], 0, scanLimit - 1)))).flat();
    waiting.complete = states.every((state) => (counts[state] ?? 0) <= scanLimit);
    let oldest = Infinity;
    for (const job of jobs) {
      if (!job || !needsOneOf(job, unserved, live.length === 0)) continue;
      waiting.messages++;
      oldest = Math.min(oldest, job.data.waitingSince ?? job.timestamp);
    }
    waiting.oldestSince = Number.isFinite(oldest) ? new Date(oldest) : null;
    return waiting;
  }

  /**
   * Stops expecting these handlers (of this service by default) for messages routed from now on;
   * a message routed before still gets one from a live process that has it (an older build), and
   * is no longer held for it once none has. Processes that still have them do not register them
   * again. Returns the `type\thandler` entries removed.
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

/** Whether a job needs one of the unserved handlers (its own list, or every handler of its type on older jobs). */
function needsOneOf(
  job: Job<OutboxJobData>,
  unserved: ReadonlyArray<{ type: string; handler: string }>,
  noProcess: boolean,
): boolean {
  const data = job.data;
  // Without a live process any job in the queue waits; with one, only those it handed back.
  if (!noProcess && data.waitingSince === undefined) return false;
  const discarded = new Set(data.discarded ?? []);
  return unserved.some(
    (entry) =>
      entry.type === data.type &&
      !discarded.has(entry.handler) &&
      (data.handlers === undefined || data.handlers.includes(entry.handler)),
  );
}
