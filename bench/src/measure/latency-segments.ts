import { Redis } from 'ioredis';
import { now } from '../harness.js';
import { scanKeys } from '../redis-keys.js';
import { distribution, type Distribution } from './stats.js';

/**
 * Where commit → handler start goes, cut at the two moments BullMQ writes on every job: when it
 * was added (`timestamp`) and when a worker asked to take it (`processedOn`). Both are the adding
 * and the taking process's `Date.now()`, so these parts are whole milliseconds.
 */
export interface LatencySegments {
  /** Commit returned → job added: the relay's wake, claim, routing and add (the naive API's add). */
  enqueued: Distribution;
  /** Job added → a worker asked for it: BullMQ's wake-up of a waiting worker. */
  taken: Distribution;
  /** Taken → handler started: the job read, the event rebuilt, the handler's transaction begun with its inbox mark. */
  started: Distribution;
  /** How many events the slowest 1 % is (at least one). */
  tailEvents: number;
  /** How many runs of commits less than `BURST_GAP_MS` apart those events came in. */
  tailBursts: number;
}

/** Slow events whose commits are closer than this belong to one burst. */
export const BURST_GAP_MS = 250;

interface JobTimes {
  addedAt: number;
  takenAt: number;
}

/**
 * Reads the added and taken times of every completed job under `prefix` whose aggregate is in
 * `commits`, and splits each event's latency at them. `commits` and `starts` are in the bench's
 * clock (`now()`); the jobs' epoch milliseconds are moved onto it. Undefined when the jobs are
 * gone (a queue that removes completed jobs at once).
 */
export async function latencySegments(
  redisUrl: string,
  prefix: string,
  commits: ReadonlyMap<string, number>,
  starts: ReadonlyMap<string, number>,
): Promise<LatencySegments | undefined> {
  const jobs = await completedJobTimes(redisUrl, prefix, commits);
  const epochOffset = Date.now() - now();
  const enqueued: number[] = [];
  const taken: number[] = [];
  const started: number[] = [];
  const events: Array<{ commitAt: number; latency: number }> = [];
  for (const [aggregateId, job] of jobs) {
    const commitAt = commits.get(aggregateId)!;
    const startAt = starts.get(aggregateId);
    if (startAt === undefined) continue;
    const addedAt = job.addedAt - epochOffset;
    const takenAt = job.takenAt - epochOffset;
    enqueued.push(addedAt - commitAt);
    taken.push(takenAt - addedAt);
    started.push(startAt - takenAt);
    events.push({ commitAt, latency: startAt - commitAt });
  }
  if (events.length === 0) return undefined;
  return {
    enqueued: distribution(enqueued),
    taken: distribution(taken),
    started: distribution(started),
    ...tailOf(events),
  };
}

function tailOf(events: Array<{ commitAt: number; latency: number }>): { tailEvents: number; tailBursts: number } {
  const slowest = [...events]
    .sort((a, b) => b.latency - a.latency)
    .slice(0, Math.max(1, Math.floor(events.length / 100)))
    .map((event) => event.commitAt)
    .sort((a, b) => a - b);
  const tailBursts = slowest.filter((at, i) => i === 0 || at - slowest[i - 1] >= BURST_GAP_MS).length;
  return { tailEvents: slowest.length, tailBursts };
}

async function completedJobTimes(
  redisUrl: string,
  prefix: string,
  commits: ReadonlyMap<string, number>,
): Promise<Map<string, JobTimes>> {
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  const times = new Map<string, JobTimes>();
  try {
    const completedSets: string[] = [];
    for await (const keys of scanKeys(redis, `${prefix}*:completed`)) completedSets.push(...keys);
    for (const completed of completedSets) {
      const queueKey = completed.slice(0, -'completed'.length);
      const ids = await redis.zrange(completed, '0', '-1');
      for (let from = 0; from < ids.length; from += 1000) {
        const pipeline = redis.pipeline();
        for (const id of ids.slice(from, from + 1000))
          pipeline.hmget(`${queueKey}${id}`, 'data', 'timestamp', 'processedOn');
        for (const [error, reply] of (await pipeline.exec()) ?? []) {
          const [data, timestamp, processedOn] = (reply ?? []) as Array<string | null>;
          if (error || !data || !timestamp || !processedOn) continue;
          const aggregateId = (JSON.parse(data) as { aggregateId?: string }).aggregateId;
          if (aggregateId && commits.has(aggregateId))
            times.set(aggregateId, { addedAt: Number(timestamp), takenAt: Number(processedOn) });
        }
      }
    }
    return times;
  } finally {
    redis.disconnect();
  }
}
