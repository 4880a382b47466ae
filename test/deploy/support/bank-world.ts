import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MikroORM } from '@mikro-orm/postgresql';
import type { Queue } from 'bullmq';
import { OutboxSubscriptions, type OutboxJobData } from 'nest-outbox';
import { OutboxQueues } from '../../../libs/outbox/src/routing/outbox-queues.js';
import { BANK_SCHEMA, LEDGER_SCHEMA } from '../../processes/bank/bank.schema.js';
import {
  Cluster,
  assertEntryBuilt,
  compiledEntry,
  type NodeEnv,
  type NodeProcess,
} from '../../fault/support/cluster.js';
import { freshDatabase, withConnection } from '../../support/database.js';
import { startFixtureApp, type FixtureApp } from '../../support/fixture.js';
import { REDIS_URL, removePrefix, uniquePrefix } from '../../support/redis.js';

const PRODUCER = compiledEntry('test/processes/bank/bank-producer.ts');
const CONSUMER = compiledEntry('test/processes/bank/ledger-consumer.ts');

/** Worker settings of every ledger process: a SIGKILLed process's jobs come back in seconds, not 30. */
const CONSUMER_ENV: NodeEnv = { LOCK_DURATION_MS: 5000, STALLED_INTERVAL_MS: 2500, CONCURRENCY: 8 };

/**
 * One scenario of the bank world: the producing service `bank` and the consuming service `ledger`,
 * each with a database of its own, on one Redis prefix; their processes (spawned from the compiled
 * entries in test/processes/bank); and an observer in this process — the `bank` service's
 * OutboxMonitor and OutboxSubscriptions, with neither relay nor worker — that reads both databases.
 */
export class BankWorld {
  readonly logDir = mkdtempSync(join(tmpdir(), 'nest-outbox-deploy-'));
  readonly cluster: Cluster;
  private constructor(
    readonly name: string,
    readonly prefix: string,
    readonly bankUrl: string,
    readonly ledgerUrl: string,
    readonly observer: FixtureApp,
    private readonly ledgerOrm: MikroORM,
  ) {
    this.cluster = new Cluster({ REDIS_URL, OUTBOX_PREFIX: prefix, RELAY_INTERVAL_MS: 500 }, this.logDir, name);
  }

  static async create(name: string): Promise<BankWorld> {
    assertEntryBuilt(PRODUCER);
    assertEntryBuilt(CONSUMER);
    const bankUrl = await freshDatabase(`${name}_bank`);
    const ledgerUrl = await freshDatabase(`${name}_ledger`);
    await withConnection(bankUrl, async (execute) => {
      for (const statement of BANK_SCHEMA) await execute(statement);
    });
    await withConnection(ledgerUrl, async (execute) => {
      for (const statement of LEDGER_SCHEMA) await execute(statement);
    });
    const prefix = uniquePrefix(name);
    const observer = await startFixtureApp(
      bankUrl,
      {
        service: 'bank',
        redis: REDIS_URL,
        prefix,
        relay: { enabled: false },
        worker: { enabled: false },
        retention: { enabled: false },
      },
      [],
    );
    const ledgerOrm = await MikroORM.init({
      clientUrl: ledgerUrl,
      entities: [],
      discovery: { warnWhenNoEntities: false },
      pool: { min: 0, max: 2 },
    });
    return new BankWorld(name, prefix, bankUrl, ledgerUrl, observer, ledgerOrm);
  }

  get monitor() {
    return this.observer.monitor;
  }

  get subscriptions(): OutboxSubscriptions {
    return this.observer.app.get(OutboxSubscriptions);
  }

  /** The ledger service's queue. */
  get ledgerQueue(): Queue<OutboxJobData> {
    return this.observer.app.get(OutboxQueues).of('ledger') as Queue<OutboxJobData>;
  }

  producer(env: NodeEnv = {}): NodeProcess {
    return this.cluster.spawn('producer', { DATABASE_URL: this.bankUrl, ...env }, PRODUCER);
  }

  consumer(name: string, build: 'v1' | 'v2' | 'v3', env: NodeEnv = {}): NodeProcess {
    return this.cluster.spawn(
      name,
      { DATABASE_URL: this.ledgerUrl, BANK_BUILD: build, ...CONSUMER_ENV, ...env },
      CONSUMER,
    );
  }

  bankSql<T = Record<string, any>>(sql: string, params: unknown[] = []): Promise<T[]> {
    return this.observer.sql(sql, params) as Promise<T[]>;
  }

  ledgerSql<T = Record<string, any>>(sql: string, params: unknown[] = []): Promise<T[]> {
    return this.ledgerOrm.em.getConnection().execute(sql, params) as Promise<T[]>;
  }

  /** Effects the ledger's handlers wrote so far, by handler. */
  async effectCounts(): Promise<Record<string, number>> {
    const rows = await this.ledgerSql<{ handler: string; n: number }>(
      'select handler, count(*)::int as n from ledger_effect group by handler',
    );
    return Object.fromEntries(rows.map((row) => [row.handler, row.n]));
  }

  async messageCount(): Promise<number> {
    const [row] = await this.bankSql<{ n: number }>('select count(*)::int as n from outbox_message');
    return row.n;
  }

  /** Ends every process, the observer and the scenario's Redis keys; the log directory stays for a post-mortem. */
  async dispose(): Promise<void> {
    await this.cluster.killAll();
    await Promise.allSettled([this.observer.close(), this.ledgerOrm.close(true)]);
    await removePrefix(this.prefix);
  }
}
