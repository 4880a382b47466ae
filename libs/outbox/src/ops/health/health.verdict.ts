import {
  keyHeldTooLong,
  leasesExpired,
  oldestPendingTooOld,
  relayStalled,
  tooManyDeadLetters,
  tooManyStuck,
  waitingTooLong,
} from '../../outbox.messages.js';
import type { HealthStatus, OutboxHealthDetails } from './health.figures.js';
import type { ResolvedThresholds } from './health.options.js';

/** The figures the verdict weighs: the details, plus how long this process's relay has been quiet. */
export interface HealthReading {
  details: OutboxHealthDetails;
  /** Since the relay last showed it works, or since the indicator started if it has not yet; `null` when off here. */
  relayQuietMs: number | null;
  /** Problems found while reading (a store that did not answer): always `down`. */
  readProblems: string[];
}

/**
 * Weighs the figures against the thresholds. `down` means messages are not moving (a relay hung,
 * a backlog growing old, leases nobody takes back, messages no process can handle, a store that does
 * not answer); `degraded` means something waits for an operator but delivery goes on.
 */
export function verdict(
  reading: HealthReading,
  limits: ResolvedThresholds,
): { status: HealthStatus; problems: string[] } {
  const { details: d, relayQuietMs } = reading;
  const down = [...reading.readProblems];
  const degraded: string[] = [];
  const over = (value: number | null, limit: number | false): value is number =>
    limit !== false && value !== null && value > limit;
  // Only read after `over` said the check is on.
  const limit = (value: number | false) => (value === false ? 0 : value);

  if (over(relayQuietMs, limits.relayStalledMs) && (d.due ?? 0) > 0) down.push(relayStalled(relayQuietMs, d.due!));
  if (over(d.oldestDueMs, limits.oldestPendingMs))
    down.push(oldestPendingTooOld(d.oldestDueMs, limit(limits.oldestPendingMs)));
  if (over(d.oldestExpiredLeaseMs, limits.expiredLeaseMs) && (d.expiredLeases ?? 0) > 0) {
    down.push(leasesExpired(d.expiredLeases!, d.oldestExpiredLeaseMs));
  }
  const waiting = d.waitingForHandlers;
  if (waiting && waiting.messages > 0 && over(waiting.oldestMs, limits.waitingForHandlersMs)) {
    down.push(waitingTooLong(waiting.messages, waiting.oldestMs, waiting.handlers));
  }
  if (over(d.deadLetters, limits.deadLetters))
    degraded.push(tooManyDeadLetters(d.deadLetters, limit(limits.deadLetters)));
  if (over(d.stuck, limits.stuck)) degraded.push(tooManyStuck(d.stuck, limit(limits.stuck)));
  if (over(d.oldestHeldMs, limits.heldKeysMs) && (d.heldKeys ?? 0) > 0) {
    degraded.push(keyHeldTooLong(d.heldKeys!, d.oldestHeldMs));
  }
  const status: HealthStatus = down.length > 0 ? 'down' : degraded.length > 0 ? 'degraded' : 'up';
  return { status, problems: [...down, ...degraded] };
}
