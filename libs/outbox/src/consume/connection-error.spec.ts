import { describe, expect, it } from '@jest/globals';
import { ConnectionException } from '@mikro-orm/core';
import { OutboxHandlerError, OutboxHandlersError } from '../outbox.errors.js';
import { looksLikeConnectionError } from './connection-error.js';

const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' });

describe('looksLikeConnectionError', () => {
  it('sees a lost connection through the errors that wrap it', () => {
    expect(looksLikeConnectionError(refused)).toBe(true);
    expect(looksLikeConnectionError(new ConnectionException(new Error('gone')))).toBe(true);
    expect(looksLikeConnectionError(new OutboxHandlerError('A', 'm', 't', refused))).toBe(true);
    expect(looksLikeConnectionError({ code: '57P01' })).toBe(true);
  });

  it('sees it among several handlers failures when any of them lost its connection', () => {
    const failures = new Map<string, unknown>([
      ['Projector', new Error('duplicate key')],
      ['Notifier', refused],
    ]);
    expect(looksLikeConnectionError(new OutboxHandlersError('m', 't', failures))).toBe(true);
    expect(
      looksLikeConnectionError(new OutboxHandlersError('m', 't', new Map([['Projector', new Error('nope')]]))),
    ).toBe(false);
  });

  it('does not take a handler bug for an outage', () => {
    expect(looksLikeConnectionError(new Error('Cannot read properties of undefined'))).toBe(false);
    expect(looksLikeConnectionError(undefined)).toBe(false);
  });
});
