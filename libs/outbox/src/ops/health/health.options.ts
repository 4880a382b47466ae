import { OutboxOptionsError } from '../../outbox.errors.js';
import { invalidHealthOption } from '../../outbox.messages.js';

/**
 * When the outbox health indicator reports `down` (messages are not moving: a readiness probe or a
 * page) or `degraded` (something waits for an operator; terminus keeps answering 200). Each is a
 * number, or `false` to switch that check off. Every figure is reported whatever the thresholds.
 */
export interface OutboxHealthThresholds {
  /**
   * Down when this process runs the relay, rows are due, and the relay has not finished a drain
   * (or marked a batch) for this long — it is hung or cannot reach Redis or PostgreSQL. An idle
   * outbox never trips it. Default 30000, and at least 3 × `relay.intervalMs`.
   */
  relayStalledMs?: number | false;
  /** Down when the oldest due outbox row has waited longer than this (no relay is keeping up). Default 60000. */
  oldestPendingMs?: number | false;
  /** Down when a claimed row's lease ran out this long ago and no relay took it back. Default 60000. */
  expiredLeaseMs?: number | false;
  /** Down when a message has waited this long for a handler no live process of this service has. Default 60000. */
  waitingForHandlersMs?: number | false;
  /** Degraded when this service's queue holds more dead letters than this. Default 0. */
  deadLetters?: number | false;
  /** Degraded when more outbox rows than this are stuck (the relay gave up enqueueing them). Default 0. */
  stuck?: number | false;
  /** Degraded when an ordered key has been held back longer than this. Default 300000 (5 minutes). */
  heldKeysMs?: number | false;
}

export interface OutboxHealthOptions {
  thresholds?: OutboxHealthThresholds;
  /** The check answers `down` when reading the figures takes longer than this, in ms. Default 5000. */
  timeoutMs?: number;
}

export type ResolvedThresholds = { [K in keyof OutboxHealthThresholds]-?: number | false };

const NAMES: ReadonlyArray<keyof OutboxHealthThresholds> = [
  'relayStalledMs',
  'oldestPendingMs',
  'expiredLeaseMs',
  'waitingForHandlersMs',
  'deadLetters',
  'stuck',
  'heldKeysMs',
];

export function defaultThresholds(relayIntervalMs: number): ResolvedThresholds {
  return {
    // Several missed ticks, and longer than a short Redis or database blip: a stalled relay, not a slow one.
    relayStalledMs: Math.max(30_000, 3 * relayIntervalMs),
    oldestPendingMs: 60_000,
    expiredLeaseMs: 60_000,
    waitingForHandlersMs: 60_000,
    deadLetters: 0,
    stuck: 0,
    heldKeysMs: 300_000,
  };
}

/** `given` over `base`, each value checked; throws `OutboxOptionsError` naming the bad one. */
export function mergeThresholds(base: ResolvedThresholds, given: OutboxHealthThresholds = {}): ResolvedThresholds {
  if (typeof given !== 'object' || given === null)
    throw new OutboxOptionsError(invalidHealthOption('thresholds', given));
  const merged = { ...base };
  for (const name of NAMES) {
    const value = given[name];
    if (value === undefined) continue;
    if (value !== false && (typeof value !== 'number' || !Number.isFinite(value) || value < 0)) {
      throw new OutboxOptionsError(invalidHealthOption(`thresholds.${name}`, value));
    }
    merged[name] = value;
  }
  return merged;
}

export function checkTimeout(value: unknown): number {
  if (value === undefined) return 5000;
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    throw new OutboxOptionsError(invalidHealthOption('timeoutMs', value));
  }
  return value;
}
