import { freshDatabase } from '../../support/database.js';
import { migrateOrders } from '../../support/orders-app.js';
import { uniquePrefix } from '../../support/redis.js';
import { waitUntil } from '../../support/wait.js';
import { Cluster } from './cluster.js';
import { Probe } from './probe.js';
import type { ScenarioFigures } from './scoreboard.js';

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export interface Servers {
  postgresUrl: string;
  redisUrl: string;
  logDir: string;
}

/** One scenario's world: its own database and queue on the suite's private servers, its processes, an observer. */
export class Scenario {
  probe!: Probe;

  private constructor(
    readonly id: string,
    readonly databaseUrl: string,
    readonly redisUrl: string,
    readonly prefix: string,
    readonly cluster: Cluster,
    readonly figures: ScenarioFigures,
  ) {}

  static async create(id: string, servers: Servers, figures: ScenarioFigures): Promise<Scenario> {
    const databaseUrl = await freshDatabase(`fault_${id}`, servers.postgresUrl);
    await migrateOrders(databaseUrl);
    const prefix = uniquePrefix(`fault-${id}`);
    const cluster = new Cluster(
      { DATABASE_URL: databaseUrl, REDIS_URL: servers.redisUrl, OUTBOX_PREFIX: prefix },
      servers.logDir,
      id,
    );
    const scenario = new Scenario(id, databaseUrl, servers.redisUrl, prefix, cluster, figures);
    await scenario.openProbe();
    return scenario;
  }

  async openProbe(): Promise<void> {
    this.probe = await Probe.open(this.databaseUrl, this.redisUrl, this.prefix);
  }

  /**
   * Waits until nothing can move any more (see Probe.isQuiet); on timeout the error carries the
   * progress, queue counts and the processes' error lines.
   */
  async settle(what: string, timeoutMs: number): Promise<number> {
    try {
      await waitUntil(what, () => this.probe.isQuiet(), timeoutMs, 250);
      return Date.now();
    } catch (error) {
      throw new Error(`${(error as Error).message}\n${await this.describe()}`, { cause: error });
    }
  }

  /** Progress, queue and the processes' trouble lines, for failure messages. */
  async describe(): Promise<string> {
    const progress = await this.probe.progress().catch((e: unknown) => `unavailable: ${String(e)}`);
    const queue = await this.probe.queueCounts().catch((e: unknown) => `unavailable: ${String(e)}`);
    return [
      `progress ${JSON.stringify(progress)}`,
      `queue ${JSON.stringify(queue)}`,
      'process log lines:',
      ...this.cluster.errorLines(),
    ].join('\n');
  }

  /** Ends every process and the observer; for afterEach, whatever state the test left. */
  async dispose(): Promise<void> {
    await this.cluster.killAll();
    await this.probe?.close();
  }
}
