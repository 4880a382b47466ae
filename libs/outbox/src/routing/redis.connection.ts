import { Redis, type RedisOptions } from 'ioredis';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';

/** A new ioredis client from the module's `redis` option (URL or options) plus per-use settings. */
export function createRedis(options: ResolvedOutboxOptions, overrides: RedisOptions): Redis {
  const retryStrategy = (attempt: number) => Math.min(attempt * 200, 5000);
  return typeof options.redis === 'string'
    ? new Redis(options.redis, { retryStrategy, ...overrides })
    : new Redis({ retryStrategy, ...options.redis, ...overrides });
}
