import { describe, expect, it } from '@jest/globals';
import { OutboxOptionsError } from '../outbox.errors.js';
import type { OutboxModuleOptions } from './outbox-options.interface.js';
import { resolveOutboxOptions } from './resolve-options.js';
import { retryWindowMs } from './retry-window.js';

describe('resolveOutboxOptions', () => {
  it('fills every default', () => {
    const options = resolveOutboxOptions({ service: 'orders' });
    expect(options).toMatchObject({
      service: 'orders',
      prefix: 'outbox',
      retiredHandlers: [],
      relay: { enabled: true, intervalMs: 1000, batchSize: 500, leaseMs: 30_000, dispatchOnCommit: true },
      worker: { enabled: true, concurrency: 16, attempts: 5, backoff: { type: 'exponential', delayMs: 1000 } },
      tables: { outbox: 'outbox_message', inbox: 'inbox_message' },
      retention: { enabled: true, deleteOnDispatch: false },
    });
  });

  it('needs a service name, and says what it is for', () => {
    expect(() => resolveOutboxOptions({} as OutboxModuleOptions)).toThrow(
      /needs the option "service": the name of this service/,
    );
    expect(() => resolveOutboxOptions({ service: 'or:ders' })).toThrow(/"service": expected 1-100 letters, digits/);
  });

  it.each<[string, Omit<OutboxModuleOptions, 'service'>, RegExp]>([
    ['batch size zero', { relay: { batchSize: 0 } }, /"relay\.batchSize": expected an integer from 1 to 10000, got 0/],
    [
      'fractional concurrency',
      { worker: { concurrency: 1.5 } },
      /"worker\.concurrency": expected an integer from 1 to 1000, got 1\.5/,
    ],
    [
      'no handler runs per transaction',
      { worker: { handlersPerTransaction: 0 } },
      /"worker\.handlersPerTransaction": expected an integer from 1 to 1000, got 0/,
    ],
    ['string interval', { relay: { intervalMs: '1000' as unknown as number } }, /"relay\.intervalMs".*got "1000"/],
    [
      'unknown backoff',
      { worker: { backoff: { type: 'linear' as 'fixed' } } },
      /"worker\.backoff\.type": expected one of "exponential", "fixed", got "linear"/,
    ],
    [
      'SQL in a table name',
      { tables: { outbox: 'outbox; drop table orders' } },
      /"tables\.outbox": expected a SQL identifier/,
    ],
    ['quote in a schema name', { tables: { schema: 'a"b' } }, /"tables\.schema": expected a SQL identifier/],
    [
      'same table twice',
      { tables: { outbox: 'messages', inbox: 'messages' } },
      /"tables\.outbox" and "tables\.inbox": they must differ/,
    ],
    [
      'relay attempts zero',
      { relay: { maxAttempts: 0 } },
      /"relay\.maxAttempts": expected an integer from 1 to 1000, got 0/,
    ],
    [
      'dispatch on commit as a string',
      { relay: { dispatchOnCommit: 'yes' as unknown as boolean } },
      /"relay\.dispatchOnCommit": expected true or false/,
    ],
    ['Redis glob in a prefix', { prefix: 'bull*' }, /"prefix"/],
    ['two hash tags in a prefix', { prefix: '{a}{b}' }, /"prefix": expected .*at most one \{hash tag\}/],
    ['a cluster without nodes', { redis: { cluster: [] } }, /"redis\.cluster": expected a non-empty array/],
    [
      'retired handlers that are not names',
      { retiredHandlers: ['Grant Bonus'] },
      /"retiredHandlers": expected an array of handler class names/,
    ],
    ['a non-Redis URL', { redis: 'http://localhost:6379' }, /"redis": expected a URL starting with redis:\/\//],
    [
      'a URL with a password, which is not echoed',
      { redis: 'http://user:s3cret@host:6379' },
      /got "http:\/\/user:\*\*\*@host:6379"/,
    ],
    ['a relay section that is not an object', { relay: 'fast' as never }, /"relay": expected an object, got "fast"/],
    [
      'jitter above 1',
      { worker: { backoff: { jitter: 2 } } },
      /"worker\.backoff\.jitter": expected a number from 0 to 1, got 2/,
    ],
    [
      'negative stalled count',
      { worker: { maxStalledCount: -1 } },
      /"worker\.maxStalledCount": expected an integer from 0 to 1000, got -1/,
    ],
    [
      'flag as a string',
      { relay: { enabled: 'no' as unknown as boolean } },
      /"relay\.enabled": expected true or false, got "no"/,
    ],
    ['eventBus not a flag', { eventBus: 'outbox' as unknown as boolean }, /"eventBus": expected true or false/],
    [
      'completed jobs kept shorter than the lease',
      { keepCompletedSeconds: 5, relay: { leaseMs: 60_000 } },
      /"keepCompletedSeconds".*shorter than relay\.leaseMs/,
    ],
    [
      'inbox kept shorter than the retry window',
      { retention: { inboxAfterSeconds: 10 }, worker: { attempts: 5, backoff: { delayMs: 1000 } } },
      /"retention\.inboxAfterSeconds": 10s is not longer than the retry window \(15s/,
    ],
  ])('rejects %s with an error naming the option', (_, options, message) => {
    expect(() => resolveOutboxOptions({ service: 'orders', ...options })).toThrow(OutboxOptionsError);
    expect(() => resolveOutboxOptions({ service: 'orders', ...options })).toThrow(message);
  });

  it('accepts a Redis Cluster and a prefix with one hash tag', () => {
    const options = resolveOutboxOptions({
      service: 'orders',
      prefix: '{outbox}',
      redis: { cluster: [{ host: '127.0.0.1', port: 7000 }] },
    });
    expect(options.prefix).toBe('{outbox}');
  });

  it('computes the retry window from the backoff rule', () => {
    const worker = resolveOutboxOptions({
      service: 'orders',
      worker: { attempts: 4, backoff: { type: 'exponential', delayMs: 100 } },
    }).worker;
    expect(retryWindowMs(worker)).toBe(100 + 200 + 400);
    expect(retryWindowMs({ ...worker, backoff: { type: 'fixed', delayMs: 100, jitter: 0 } })).toBe(300);
  });

  it('never echoes a Redis password, whatever the option looks like', () => {
    let message = '';
    try {
      resolveOutboxOptions({ service: 'orders', redis: 'redis//:hunter2@10.0.0.1:6379' });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/"redis"/);
    expect(message).not.toContain('hunter2');
  });
});
