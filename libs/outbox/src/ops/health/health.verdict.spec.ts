import { describe, expect, it } from '@jest/globals';
import type { OutboxHealthDetails } from './health.figures.js';
import { defaultThresholds, mergeThresholds } from './health.options.js';
import { verdict, type HealthReading } from './health.verdict.js';

const quiet: OutboxHealthDetails = {
  service: 'orders',
  relay: { enabled: true, lastActiveMsAgo: 100 },
  pending: 0,
  due: 0,
  oldestDueMs: 0,
  stuck: 0,
  expiredLeases: 0,
  oldestExpiredLeaseMs: 0,
  deadLetters: 0,
  heldKeys: 0,
  oldestHeldMs: 0,
  waitingForHandlers: { handlers: [], messages: 0, oldestMs: 0 },
  problems: [],
};
const reading = (details: Partial<OutboxHealthDetails>, relayQuietMs: number | null = 100): HealthReading => ({
  details: { ...quiet, ...details },
  relayQuietMs,
  readProblems: [],
});
const limits = defaultThresholds(1000);

describe('health verdict', () => {
  it('is up when nothing is over a threshold', () => {
    expect(verdict(reading({}), limits)).toEqual({ status: 'up', problems: [] });
  });

  it('does not call an idle relay stalled: a quiet relay matters only while rows are due', () => {
    expect(verdict(reading({ due: 0 }, 600_000), limits).status).toBe('up');
    expect(verdict(reading({ due: 3 }, 600_000), limits)).toEqual({
      status: 'down',
      problems: ["this process's relay has not finished a drain for 600 s while 3 row(s) are due"],
    });
    expect(verdict(reading({ due: 3 }, 29_000), limits).status).toBe('up');
  });

  it('takes the relay threshold from the relay interval when that is long', () => {
    expect(defaultThresholds(20_000).relayStalledMs).toBe(60_000);
    expect(verdict(reading({ due: 1 }, 45_000), defaultThresholds(20_000)).status).toBe('up');
  });

  it('is degraded, not down, for held keys past their threshold', () => {
    expect(verdict(reading({ heldKeys: 2, oldestHeldMs: 301_000 }), limits)).toEqual({
      status: 'degraded',
      problems: ['2 ordered key(s) held back, the oldest for 301 s'],
    });
    expect(verdict(reading({ heldKeys: 2, oldestHeldMs: 299_000 }), limits).status).toBe('up');
  });

  it('lists down problems before degraded ones, and read failures first', () => {
    const result = verdict(
      { ...reading({ deadLetters: 4, oldestDueMs: 61_000, due: 1 }), readProblems: ['could not read x: y'] },
      limits,
    );
    expect(result.status).toBe('down');
    expect(result.problems).toEqual([
      'could not read x: y',
      'the oldest due outbox row has waited 61 s (limit 60 s): no relay is keeping up',
      "4 dead letter(s) in this service's queue (limit 0)",
    ]);
  });

  it('switches a check off with false, and leaves unknown figures (null) unjudged', () => {
    const off = mergeThresholds(limits, { deadLetters: false, oldestPendingMs: false });
    expect(verdict(reading({ deadLetters: 9, oldestDueMs: 999_999, due: 1 }), off).status).toBe('up');
    expect(verdict(reading({ deadLetters: null, stuck: null }), limits).status).toBe('up');
  });
});
