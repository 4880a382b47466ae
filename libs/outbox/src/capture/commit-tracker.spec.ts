import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import type { EntityManager, Transaction, TransactionEventArgs } from '@mikro-orm/core';
import { Logger } from '@nestjs/common';
import { CommitSignal, type CommittedRows } from '../routing/commit.signal.js';
import type { OutboxRow } from '../store/outbox-row.js';
import type { OutboxMetrics } from '../telemetry/outbox.metrics.js';
import type { CommitOutcome } from './commit-outcomes.js';
import { CommitTracker, type FlushedRows } from './commit-tracker.js';

const row = (id: string) => ({ id, leased: true }) as OutboxRow;

/** An EntityManager inside the caller's transaction `transaction`. */
const inTransaction = (transaction: Transaction) =>
  ({ getTransactionContext: () => transaction }) as unknown as EntityManager;

describe('CommitTracker, with rows leased in the caller transaction', () => {
  let tracker: CommitTracker;
  let sent: Array<{ rows: readonly OutboxRow[]; leasedAt: number }>;
  let handedBack: Array<{ rows: readonly OutboxRow[]; reason: string }>;
  let wakes: number;
  let heard: object[][];
  let warnings: string[];
  const transaction = { name: 'caller' } as unknown as Transaction;
  const event = { deposited: 1 };

  beforeEach(() => {
    const signal = new CommitSignal();
    wakes = 0;
    signal.listen(() => wakes++);
    tracker = new CommitTracker(signal, { enabled: false } as OutboxMetrics);
    sent = [];
    handedBack = [];
    const committedRows: CommittedRows = {
      send: (rows, leasedAt) => sent.push({ rows, leasedAt }),
      handBack: (rows, reason) => handedBack.push({ rows, reason }),
    };
    tracker.committedRows = committedRows;
    heard = [];
    tracker.committedEvents = { wanted: () => true, emit: (events) => heard.push([...events]) };
    warnings = [];
    jest.spyOn(Logger.prototype, 'warn').mockImplementation((message: unknown) => {
      warnings.push(String(message));
    });
  });

  afterEach(() => {
    jest.restoreAllMocks();
  });

  function flushAndCommit(outcome: CommitOutcome, answer: boolean | undefined, extra: Partial<FlushedRows> = {}) {
    const flushed: FlushedRows = { events: [event], types: undefined, leased: [row('a')], wakesRelay: false, outcome };
    tracker.flushed(inTransaction(transaction), { ...flushed, ...extra });
    outcome.committed = answer;
    tracker.afterTransactionCommit({ transaction } as TransactionEventArgs);
  }

  it('sends the leased rows, with when they were written, once PostgreSQL answered COMMIT', () => {
    const before = Date.now();
    flushAndCommit({ committed: undefined }, true);
    expect(sent).toEqual([{ rows: [row('a')], leasedAt: expect.any(Number) }]);
    expect(sent[0].leasedAt).toBeGreaterThanOrEqual(before);
    expect(heard).toEqual([[event]]);
    expect(handedBack).toEqual([]);
    expect(warnings).toEqual([]);
  });

  it('sends nothing, wakes no relay and tells no listener when PostgreSQL answered COMMIT with ROLLBACK', () => {
    flushAndCommit({ committed: undefined }, false, { wakesRelay: true });
    expect(sent).toEqual([]);
    expect(handedBack).toEqual([]);
    expect(heard).toEqual([]);
    expect(wakes).toBe(0);
    expect(warnings).toEqual([expect.stringMatching(/answered COMMIT with ROLLBACK/)]);
  });

  it('hands the rows to a relay when the answer was not seen', () => {
    flushAndCommit({ committed: undefined }, undefined);
    expect(sent).toEqual([]);
    expect(handedBack).toEqual([{ rows: [row('a')], reason: expect.stringMatching(/COMMIT was not seen/) }]);
  });
});
