import { describe, expect, it } from '@jest/globals';
import { OutboxOptionsError } from '../outbox.errors.js';
import { resolveOutboxOptions } from '../options/resolve-options.js';
import { errorText } from './error-text.js';
import { redactUrl } from './redact.js';

const SECRET = 's3cr3t';

describe('redactUrl', () => {
  it.each([
    ['redis://user:s3cr3t@host:6379/0', 'redis://user:***@host:6379/0'],
    ['rediss://:s3cr3t@host', 'rediss://:***@host'],
    ['postgres://app:s3cr3t@db:5432/orders', 'postgres://app:***@db:5432/orders'],
    // A password holding characters a URL should have encoded: hidden up to the last "@".
    ['redis://user:s3/cr@3t@host', 'redis://user:***@host'],
    ['redis://user:s3:cr3t@host', 'redis://user:***@host'],
    ['user:s3cr3t@host:6379', 'user:***@host:6379'],
    ['redis://host:6379/0?password=s3cr3t&db=1', 'redis://host:6379/0?password=***&db=1'],
    ['connect to redis://u:s3cr3t@h failed', 'connect to redis://u:***@h failed'],
  ])('%s → %s', (text, redacted) => {
    expect(redactUrl(text)).toBe(redacted);
  });

  it('leaves texts without credentials alone', () => {
    for (const text of ['redis://127.0.0.1:6379', 'connect ECONNREFUSED 127.0.0.1:6379', 'ada@example.com']) {
      expect(redactUrl(text)).toBe(text);
    }
  });

  it('is applied to every error text the library forwards', () => {
    const error = new Error(`getaddrinfo ENOTFOUND for redis://default:${SECRET}@cache.internal:6379`);
    expect(errorText(error)).not.toContain(SECRET);
  });

  it.each([`redis-cache://default:${SECRET}@h`, `http://u:${SECRET}/x@h`, `redis:/u:${SECRET}@h`, `u:${SECRET}@h`])(
    'an invalid redis option %s is refused without its password',
    (redis) => {
      let error: unknown;
      try {
        resolveOutboxOptions({ service: 'orders', redis });
      } catch (caught) {
        error = caught;
      }
      expect(error).toBeInstanceOf(OutboxOptionsError);
      expect((error as Error).message).toContain('Invalid nest-outbox option "redis"');
      expect((error as Error).message).not.toContain(SECRET);
    },
  );
});
