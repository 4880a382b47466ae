import type { HeldKey } from '../outbox-ordering.js';
import type { OutboxDeadLetters } from '../outbox-dead-letters.js';
import type { OutboxMonitor } from '../outbox.monitor.js';
import type { OutboxOrdering } from '../outbox-ordering.js';
import type { OutboxSubscriptions } from '../outbox-subscriptions.js';
import { healthReadFailed } from '../../outbox.messages.js';
import { errorText } from '../../util/error-text.js';
import type { HealthReading } from './health.verdict.js';

/** The admin services the health check reads through: PostgreSQL for the outbox and ordering, Redis for the rest. */
export interface HealthSources {
  service: string;
  monitor: OutboxMonitor;
  deadLetters: OutboxDeadLetters;
  ordering: OutboxOrdering;
  subscriptions: OutboxSubscriptions;
}

const HELD_KEYS_READ = 1000;

/**
 * Reads every figure at once; a store that does not answer leaves its figures `null` and becomes a
 * problem of its own, so one outage still yields an answer that names it.
 */
export async function readHealth(sources: HealthSources, startedAt: number): Promise<HealthReading> {
  const { monitor, deadLetters, ordering, subscriptions } = sources;
  const readProblems: string[] = [];
  const attempt = async <T>(what: string, read: () => Promise<T>): Promise<T | null> => {
    try {
      return await read();
    } catch (error) {
      readProblems.push(healthReadFailed(what, errorText(error)));
      return null;
    }
  };
  const [backlog, held, dead, waiting] = await Promise.all([
    attempt('the outbox table', () => monitor.backlog()),
    attempt('the ordered keys', () => ordering.heldKeys(HELD_KEYS_READ)),
    attempt('the dead letters', () => deadLetters.count()),
    attempt('the subscriptions', () => subscriptions.waiting()),
  ]);
  const now = Date.now();
  const relay = monitor.relayActivity();
  const lastActiveAt = relay.lastActiveAt?.getTime() ?? null;
  return {
    readProblems,
    // A relay that has not drained yet is judged from when the check started watching it, so a boot never trips it.
    relayQuietMs: relay.enabled ? now - Math.max(lastActiveAt ?? 0, startedAt) : null,
    details: {
      service: sources.service,
      relay: { enabled: relay.enabled, lastActiveMsAgo: relay.enabled && lastActiveAt ? now - lastActiveAt : null },
      pending: backlog?.pending ?? null,
      due: backlog?.due ?? null,
      oldestDueMs: backlog?.oldestDueMs ?? null,
      stuck: backlog?.stuck ?? null,
      expiredLeases: backlog?.expiredLeases ?? null,
      oldestExpiredLeaseMs: backlog?.oldestExpiredLeaseMs ?? null,
      deadLetters: dead,
      heldKeys: held?.length ?? null,
      oldestHeldMs: held ? oldestHeld(held, now) : null,
      waitingForHandlers: waiting && {
        handlers: waiting.handlers.map((entry) => `${entry.type}/${entry.handler}`),
        messages: waiting.messages,
        oldestMs: waiting.oldestSince ? Math.max(0, now - waiting.oldestSince.getTime()) : 0,
      },
      problems: [],
    },
  };
}

function oldestHeld(keys: readonly HeldKey[], now: number): number {
  const since = keys.map((key) => (key.blockedBy?.since ?? key.waitingSince)?.getTime() ?? now);
  return since.length === 0 ? 0 : Math.max(0, now - Math.min(...since));
}
