import type { DeadLetter } from '../dead-letter.js';
import type { OutboxDeadLetters } from '../outbox-dead-letters.js';
import type { HeldKey, OutboxOrdering } from '../outbox-ordering.js';
import type { OutboxSubscriptions, ServiceSubscription } from '../outbox-subscriptions.js';
import type { MessageTrace, OutboxBacklog, OutboxMonitor, OutboxSnapshot, QueueCounts } from '../outbox.monitor.js';

/** One consuming service as the page shows it. */
export interface ServicePanel {
  name: string;
  /** This process's own service. */
  own: boolean;
  /** `null` when the service never registered a handler (a producer only). */
  subscription: ServiceSubscription | null;
  queue: QueueCounts;
  deadLetters: DeadLetter[];
  deadLetterCount: number;
}

/** Everything the outbox page shows, read in one go through the admin services. */
export interface DashboardView {
  service: string;
  at: Date;
  snapshot: OutboxSnapshot;
  backlog: OutboxBacklog;
  services: ServicePanel[];
  heldKeys: HeldKey[];
  trace: MessageTrace | null;
}

export interface DashboardSources {
  service: string;
  monitor: OutboxMonitor;
  deadLetters: OutboxDeadLetters;
  ordering: OutboxOrdering;
  subscriptions: OutboxSubscriptions;
}

const HELD_KEYS_SHOWN = 100;

export async function readDashboard(
  sources: DashboardSources,
  deadLettersPerService: number,
  traceId: string | undefined,
): Promise<DashboardView> {
  const { service, monitor, deadLetters, ordering, subscriptions } = sources;
  const [snapshot, backlog, registered, heldKeys, trace] = await Promise.all([
    monitor.snapshot(),
    monitor.backlog(),
    subscriptions.list(),
    ordering.heldKeys(HELD_KEYS_SHOWN),
    traceId ? monitor.trace(traceId) : null,
  ]);
  const byName = new Map(registered.map((subscription) => [subscription.service, subscription]));
  const names = [...new Set([service, ...Object.keys(snapshot.services), ...byName.keys()])].sort((a, b) =>
    a === service ? -1 : b === service ? 1 : a.localeCompare(b),
  );
  const services = await Promise.all(
    names.map(async (name): Promise<ServicePanel> => {
      const queue = deadLetters.of(name);
      const [letters, count] = await Promise.all([queue.list({ limit: deadLettersPerService }), queue.count()]);
      return {
        name,
        own: name === service,
        subscription: byName.get(name) ?? null,
        queue: snapshot.services[name] ?? { waiting: 0, active: 0, delayed: 0, completed: 0, failed: 0 },
        deadLetters: letters,
        deadLetterCount: count,
      };
    }),
  );
  return { service, at: new Date(), snapshot, backlog, services, heldKeys, trace };
}

/** Every service a dashboard action may name: this one and those registered in Redis. */
export async function knownServices(sources: DashboardSources): Promise<Set<string>> {
  const registered = await sources.subscriptions.list();
  return new Set([sources.service, ...registered.map((subscription) => subscription.service)]);
}
