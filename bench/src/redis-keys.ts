import { Redis } from 'ioredis';

/**
 * Deletes every key matching `pattern` (e.g. every key under a phase's BullMQ prefix: queues, jobs,
 * and whatever else the library keeps under its prefix — wake channel, subscriptions). A prefix
 * per phase makes the clean-up independent of which queue names a phase or a library version used,
 * and no phase sees jobs another left (the relay-alone drain leaves all of its jobs waiting).
 */
export async function deleteKeys(redisUrl: string, pattern: string): Promise<number> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  let deleted = 0;
  try {
    for await (const keys of scanKeys(redis, pattern)) if (keys.length > 0) deleted += await redis.unlink(...keys);
    return deleted;
  } finally {
    redis.disconnect();
  }
}

/** Every key matching `pattern`, a SCAN page at a time. */
export async function* scanKeys(redis: Redis, pattern: string): AsyncGenerator<string[]> {
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 5000);
    cursor = next;
    yield keys;
  } while (cursor !== '0');
}
