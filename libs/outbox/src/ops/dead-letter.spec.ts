import { describe, expect, it } from '@jest/globals';
import type { Job } from 'bullmq';
import { matchesFilter, toDeadLetter } from './dead-letter.js';

const ID = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';
const headers = { messageId: ID, correlationId: ID, occurredAt: '2026-11-22T10:00:00.000Z' };

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

describe('toDeadLetter', () => {
  it('reads handler, error and failure times from the failure record the worker keeps in progress', () => {
    const letter = toDeadLetter(
      job({
        data: { type: 'orders.order-placed.v1', payload: '{}', headers, aggregateType: null, aggregateId: null },
        progress: {
          handler: 'SendOrderConfirmation',
          error: 'SMTP down',
          firstFailedAt: '2026-11-22T10:00:01.000Z',
          lastFailedAt: '2026-11-22T10:00:09.000Z',
        },
        attemptsMade: 5,
        failedReason: 'Handler SendOrderConfirmation failed on orders.order-placed.v1 (message …): SMTP down',
      }),
    );
    expect(letter).toEqual({
      messageId: ID,
      type: 'orders.order-placed.v1',
      handler: 'SendOrderConfirmation',
      error: 'SMTP down',
      attempts: 5,
      firstFailedAt: new Date('2026-11-22T10:00:01.000Z'),
      lastFailedAt: new Date('2026-11-22T10:00:09.000Z'),
      headers,
    });
  });

  it('falls back to BullMQ fields for a job failed without a record (stalled, foreign)', () => {
    const finishedOn = Date.parse('2026-11-22T11:00:00.000Z');
    const letter = toDeadLetter(
      job({ name: 'junk', data: 'not an object', failedReason: 'job stalled more than allowable limit', finishedOn }),
    );
    expect(letter).toMatchObject({
      type: 'junk',
      handler: null,
      error: 'job stalled more than allowable limit',
      headers: null,
    });
    expect(letter.firstFailedAt).toEqual(new Date(finishedOn));
    expect(letter.lastFailedAt).toEqual(new Date(finishedOn));
  });
});

describe('matchesFilter', () => {
  const letter = toDeadLetter(
    job({ data: { type: 'a.v1' }, progress: { handler: 'H', error: 'e', firstFailedAt: '', lastFailedAt: '' } }),
  );

  it('matches when every given field is equal', () => {
    expect(matchesFilter(letter, {})).toBe(true);
    expect(matchesFilter(letter, { type: 'a.v1', handler: 'H' })).toBe(true);
    expect(matchesFilter(letter, { type: 'a.v1', handler: 'Other' })).toBe(false);
    expect(matchesFilter(letter, { type: 'b.v1' })).toBe(false);
  });
});
