import { Cluster, Redis, type RedisOptions } from 'ioredis';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';

/** A Redis client or a Redis Cluster client: BullMQ and the outbox use both the same way. */
export type RedisClient = Redis | Cluster;

/** A new ioredis client (or cluster client) from the module's `redis` option plus per-use settings. */
export function createRedis(options: Pick<ResolvedOutboxOptions, 'redis'>, overrides: RedisOptions): RedisClient {
  const retryStrategy = (attempt: number) => Math.min(attempt * 200, 5000);
  const { redis } = options;
  if (typeof redis === 'string') return new Redis(redis, { retryStrategy, ...overrides });
  if ('cluster' in redis) {
    const { cluster, options: clusterOptions = {} } = redis;
    return new Cluster(cluster, {
      clusterRetryStrategy: retryStrategy,
      ...clusterOptions,
      // Per-use settings (offline queue, retries per request) belong to each node's connection.
      enableOfflineQueue: overrides.enableOfflineQueue ?? clusterOptions.enableOfflineQueue,
      redisOptions: { ...clusterOptions.redisOptions, ...overrides },
    });
  }
  return new Redis({ retryStrategy, ...redis, ...overrides });
}
