import { Redis } from 'ioredis';

/**
 * Redis commands by name over a window (INFO commandstats): how many round trips of work each
 * event costs the server. Server-wide, so other clients of a shared Redis count too; on a quiet
 * server the figure is the run's own.
 */
export interface RedisCommands {
  /** Commands per event, all kinds. */
  perEvent: number;
  /** The busiest commands: calls per event and server µs per event. */
  top: Array<{ command: string; perEvent: number; usecPerEvent: number }>;
}

type Stats = Map<string, { calls: number; usec: number }>;

export class RedisCommandCounter {
  private readonly redis: Redis;

  constructor(redisUrl: string) {
    this.redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
  }

  async read(): Promise<Stats> {
    if (this.redis.status === 'wait') await this.redis.connect();
    const stats: Stats = new Map();
    for (const line of (await this.redis.info('commandstats')).split('\n')) {
      const match = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line.trim());
      if (match) stats.set(match[1], { calls: Number(match[2]), usec: Number(match[3]) });
    }
    return stats;
  }

  static between(start: Stats, end: Stats, events: number, top = 6): RedisCommands {
    const deltas = [...end].map(([command, { calls, usec }]) => ({
      command,
      calls: calls - (start.get(command)?.calls ?? 0),
      usec: usec - (start.get(command)?.usec ?? 0),
    }));
    // The counter's own INFO call is not the run's.
    const run = deltas.filter((d) => d.calls > 0 && d.command !== 'info');
    return {
      perEvent: run.reduce((sum, d) => sum + d.calls, 0) / events,
      top: run
        .sort((a, b) => b.calls - a.calls)
        .slice(0, top)
        .map((d) => ({ command: d.command, perEvent: d.calls / events, usecPerEvent: d.usec / events })),
    };
  }

  close(): void {
    this.redis.disconnect();
  }
}
