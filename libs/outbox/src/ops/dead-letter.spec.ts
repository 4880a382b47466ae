import { describe, expect, it } from '@jest/globals';
import type { Job } from 'bullmq';
import { matchesFilter, toDeadLetter } from './dead-letter.js';

const ID = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';
const headers = { messageId: ID, correlationId: ID, occurredAt: '2026-11-22T10:00:00.000Z' };
const data = {
  type: 'orders.order-placed.v1',
  payload: '{"orderId":"o1"}',
  headers,
  aggregateType: 'Order',
  aggregateId: 'o1',
  key: 'Order:o1',
  source: 'orders',
};

function job(fields: Partial<Job>): Job {
  return {
    id: ID,
    name: 'orders.order-placed.v1',
    data: {},
    progress: 0,
    attemptsMade: 1,
    failedReason: '',
    timestamp: 0,
    ...fields,
  } as Job;
}

const failure = (error: string, first: string, last: string, attempts = 5) => ({
  error,
  attempts,
  firstFailedAt: first,
  lastFailedAt: last,
});

describe('toDeadLetter', () => {
  it('lists every failed handler with its error, attempts and times, from the record the worker keeps in progress', () => {
    const letter = toDeadLetter(
      job({
        data,
        progress: {
          failures: {
            SendOrderConfirmation: failure('SMTP down', '2026-11-22T10:00:01.000Z', '2026-11-22T10:00:09.000Z'),
            ChargeCard: failure('card declined', '2026-11-22T10:00:02.000Z', '2026-11-22T10:00:08.000Z'),
          },
        },
        attemptsMade: 5,
        failedReason: '2 handlers failed on orders.order-placed.v1 (message …): …',
      }),
      'billing',
    );
    expect(letter).toMatchObject({
      messageId: ID,
      type: 'orders.order-placed.v1',
      service: 'billing',
      source: 'orders',
      reason: 'handler-failed',
      missing: [],
      attempts: 5,
      firstFailedAt: new Date('2026-11-22T10:00:01.000Z'),
      key: 'Order:o1',
      headers,
      payload: '{"orderId":"o1"}',
      gaveUpBy: null,
    });
    expect(letter.handlers.map((handler) => [handler.name, handler.error, handler.attempts])).toEqual([
      ['SendOrderConfirmation', 'SMTP down', 5],
      ['ChargeCard', 'card declined', 5],
    ]);
  });

  it('says which handlers never came and who gave up waiting for them', () => {
    const gaveUp = {
      reason: 'handlers-missing',
      missing: ['GrantBonus'],
      service: 'billing',
      process: 'host:42',
      version: '1.4.0',
      at: '2026-11-22T10:15:00.000Z',
    };
    const letter = toDeadLetter(job({ data, progress: { failures: {}, gaveUp } }), 'billing');
    expect(letter).toMatchObject({
      reason: 'handlers-missing',
      missing: ['GrantBonus'],
      handlers: [],
      gaveUpBy: { service: 'billing', process: 'host:42', version: '1.4.0' },
    });
  });

  it('leaves out handlers an operator discarded', () => {
    const letter = toDeadLetter(
      job({
        data: { ...data, discarded: ['ChargeCard'] },
        progress: {
          failures: {
            ChargeCard: failure('declined', '2026-11-22T10:00:00.000Z', '2026-11-22T10:00:00.000Z'),
            Audit: failure('x', '2026-11-22T10:00:00.000Z', '2026-11-22T10:00:00.000Z'),
          },
        },
      }),
      'billing',
    );
    expect(letter.handlers.map((handler) => handler.name)).toEqual(['Audit']);
    expect(letter.discarded).toEqual(['ChargeCard']);
  });

  it('falls back to BullMQ fields for a job failed without a record (stalled, foreign)', () => {
    const finishedOn = Date.parse('2026-11-22T11:00:00.000Z');
    const letter = toDeadLetter(
      job({
        name: 'stray',
        data: 'not an object' as never,
        failedReason: 'job stalled more than allowable limit',
        finishedOn,
        attemptsMade: 0,
      }),
      'orders',
    );
    expect(letter).toMatchObject({
      type: 'stray',
      reason: 'worker-died',
      handlers: [],
      error: 'job stalled more than allowable limit',
      firstFailedAt: new Date(finishedOn),
      lastFailedAt: new Date(finishedOn),
      headers: null,
      payload: null,
      source: null,
    });
  });
});

describe('matchesFilter', () => {
  const letter = toDeadLetter(
    job({
      data,
      progress: { failures: { ReportLoss: failure('x', '2026-11-22T10:00:00.000Z', '2026-11-22T10:00:00.000Z') } },
    }),
    'orders',
  );

  it('matches type and any failed handler; every given field must match', () => {
    expect(matchesFilter(letter, {})).toBe(true);
    expect(matchesFilter(letter, { type: 'orders.order-placed.v1', handler: 'ReportLoss' })).toBe(true);
    expect(matchesFilter(letter, { handler: 'Other' })).toBe(false);
    expect(matchesFilter(letter, { type: 'other', handler: 'ReportLoss' })).toBe(false);
  });
});
