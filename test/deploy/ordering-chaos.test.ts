/**
 * Order per key under chaos (issue 8 items 5 and 10), with separate OS processes: a producer
 * writing 50 keys × 100 events, relays in three processes, three worker processes running two
 * ordered handlers and an unordered sibling on one type, seeded handler failures and SIGKILLs of
 * workers (some inside a handler's open transaction), restarted at once. Everything is checked
 * from PostgreSQL and Redis afterwards.
 *
 *   npm run build        # compiles test/processes/ordered-node.ts to dist/test/processes/
 *   TEST_DB_PREFIX=… NODE_OPTIONS=--experimental-vm-modules npx jest test/deploy/ordering-chaos.test.ts
 *   ORDER_SEED=n         replays a run's failures, interleaving and kill schedule (printed by every run)
 *   ORDER_KEEP_LOGS=1    keeps every process's output (the path is printed)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { MikroORM } from '@mikro-orm/postgresql';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { outboxSchemaSql } from 'nest-outbox';
import { Cluster, assertEntryBuilt, compiledEntry, type NodeEnv, type NodeProcess } from '../fault/support/cluster.js';
import { freshDatabase, withConnection } from '../support/database.js';
import { REDIS_URL, removePrefix, uniquePrefix } from '../support/redis.js';
import { seededRandom } from '../support/seeded-random.js';
import { waitUntil } from '../support/wait.js';

const SOURCE = 'test/processes/ordered-node.ts';
const SEED = Number(process.env.ORDER_SEED ?? Math.floor(Math.random() * 2 ** 31));
const KEEP_LOGS = process.env.ORDER_KEEP_LOGS === '1';
const ORDERED = ['LedgerProjector', 'AuditTrail'];
const HANDLERS = [...ORDERED, 'Mailer'];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One scenario's database and queue (on the machine's servers, under names of its own), its processes and an observer. */
class World {
  private constructor(
    readonly databaseUrl: string,
    readonly prefix: string,
    readonly cluster: Cluster,
    private readonly orm: MikroORM,
    readonly queue: Queue,
  ) {}

  static async create(name: string, logDir: string): Promise<World> {
    const databaseUrl = await freshDatabase(name);
    await withConnection(databaseUrl, async (execute) => {
      for (const statement of outboxSchemaSql()) await execute(statement);
      await execute('create table tally (id text primary key, count int not null)');
      await execute(`create table effect (id bigserial primary key, handler text not null, tally text not null,
        n int not null, message_id uuid not null, at timestamptz not null default clock_timestamp())`);
      await execute(`create table injected_failure (id bigserial primary key, handler text not null,
        tally text not null, n int not null, held boolean not null, at timestamptz not null default clock_timestamp())`);
    });
    const prefix = uniquePrefix(name);
    const cluster = new Cluster(
      { DATABASE_URL: databaseUrl, REDIS_URL, OUTBOX_PREFIX: prefix },
      logDir,
      name,
      compiledEntry(SOURCE),
    );
    const orm = await MikroORM.init({
      clientUrl: databaseUrl,
      entities: [],
      discovery: { warnWhenNoEntities: false },
      pool: { min: 0, max: 2 },
    });
    const queue = new Queue('ledger', { prefix, connection: { url: REDIS_URL, maxRetriesPerRequest: 1 } });
    queue.on('error', () => undefined);
    return new World(databaseUrl, prefix, cluster, orm, queue);
  }

  sql<T = Record<string, unknown>>(text: string, params: unknown[] = []): Promise<T[]> {
    return this.orm.em.getConnection().execute(text, params) as Promise<T[]>;
  }

  async count(text: string, params: unknown[] = []): Promise<number> {
    const [row] = await this.sql<{ n: number }>(text, params);
    return Number(row.n);
  }

  /** Keys an ordered handler is held back on: a failing message at its turn, or later ones parked. */
  heldKeys(): Promise<number> {
    return this.count(`select count(*)::int as n from inbox_message_position p
      where p.blocked_seq is not null or exists (select 1 from inbox_message_parked q
        where q.handler = p.handler and q.source = p.source and q.key = p.key and q.seq > p.last_seq)`);
  }

  async jobs(): Promise<{ waiting: number; active: number; delayed: number; failed: number }> {
    const c = await this.queue.getJobCounts('waiting', 'prioritized', 'active', 'delayed', 'failed');
    return {
      waiting: (c.waiting ?? 0) + (c.prioritized ?? 0),
      active: c.active ?? 0,
      delayed: c.delayed ?? 0,
      failed: c.failed ?? 0,
    };
  }

  /** Every effect in, nothing pending, queued, active, delayed or held. */
  async quiet(effects: number): Promise<boolean> {
    if ((await this.count('select count(*)::int as n from effect')) < effects) return false;
    const jobs = await this.jobs();
    if (jobs.waiting + jobs.active + jobs.delayed > 0) return false;
    if ((await this.count('select count(*)::int as n from outbox_message where dispatched_at is null')) > 0)
      return false;
    return (await this.heldKeys()) === 0;
  }

  /** When BullMQ will move a delayed job back by itself (its delayed-set score), if it is delayed. */
  async delayedUntil(jobId: string): Promise<number | undefined> {
    const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
    try {
      const score = await redis.zscore(this.queue.toKey('delayed'), jobId);
      return score === null ? undefined : Math.floor(Number(score) / 0x1000);
    } finally {
      redis.disconnect();
    }
  }

  /**
   * What broke order per key, as readable lines (empty when nothing did): per tally, the events'
   * own numbers in commit order (outbox seq) must be 1…n; each ordered handler's key positions
   * must follow commit order; each ordered handler's effects must follow commit order.
   */
  async orderViolations(handlers: readonly string[], events: number): Promise<string[]> {
    const expected = Array.from({ length: events }, (_, i) => i + 1);
    const same = (a: unknown[], b: unknown[]) => a.length === b.length && a.every((value, i) => value === b[i]);
    const problems: string[] = [];
    const committed = await this.sql<{ tally: string; key: string; ids: string[]; ns: number[] }>(
      `select payload->>'tally' as tally, min(key) as key, array_agg(id::text order by seq) as ids,
         array_agg((payload->>'n')::int order by seq) as ns
       from outbox_message group by 1 order by 1`,
    );
    const positions = await this.sql<{ route: string; key: string; ids: string[]; seqs: string[] }>(
      `select r.route, m.key, array_agg(m.id::text order by r.seq) as ids, array_agg(r.seq::text order by r.seq) as seqs
       from outbox_message_route r join outbox_message m on m.id = r.message_id group by 1, 2`,
    );
    const effects = await this.sql<{ handler: string; tally: string; ids: string[]; ns: number[] }>(
      `select handler, tally, array_agg(message_id::text order by id) as ids, array_agg(n order by id) as ns
       from effect group by 1, 2`,
    );
    for (const { tally, key, ids, ns } of committed) {
      if (!same(ns, expected)) problems.push(`${tally}: committed out of its own order: ${ns.join(',')}`);
      for (const handler of handlers) {
        const place = positions.find((p) => p.route === `ledger/${handler}` && p.key === key);
        if (!place) problems.push(`${handler} ${tally}: no key positions`);
        else if (!same(place.ids, ids) || !same(place.seqs.map(Number), expected))
          problems.push(`${handler} ${tally}: positions ${place.seqs.join(',')} not in commit order`);
        const done = effects.find((e) => e.handler === handler && e.tally === tally);
        if (!done || !same(done.ids, ids))
          problems.push(`${handler} ${tally}: handled ${done?.ns.join(',') ?? 'nothing'}, committed ${ns.join(',')}`);
      }
    }
    return problems;
  }

  /** Per handler: effects missing for a written message, and effects beyond one per message. */
  async exactlyOnce(
    handlers: readonly string[],
  ): Promise<Array<{ handler: string; effects: number; lost: number; duplicates: number; inbox: number }>> {
    return this.sql(
      `select h.handler,
         (select count(*) from effect e where e.handler = h.handler)::int as effects,
         (select count(*) from outbox_message m where not exists (
            select 1 from effect e where e.handler = h.handler and e.message_id = m.id))::int as lost,
         (select count(*) - count(distinct message_id) from effect e where e.handler = h.handler)::int as duplicates,
         (select count(*) from inbox_message i where i.handler = h.handler)::int as inbox
       from unnest(?::text[]) as h(handler) order by 1`,
      [`{${handlers.join(',')}}`],
    );
  }

  async dispose(): Promise<void> {
    await this.cluster.killAll();
    await Promise.allSettled([this.queue.close(), this.orm.close(true)]);
    await removePrefix(this.prefix);
  }
}

/** Keeps `count` worker processes running: one that dies is replaced at once under the same slot. */
class Workers {
  readonly slots: NodeProcess[] = [];
  readonly unexpected: string[] = [];
  private generation = 0;
  private supervising = true;

  constructor(
    private readonly cluster: Cluster,
    private readonly envOf: (slot: number) => NodeEnv,
  ) {}

  start(slot: number): NodeProcess {
    const node = this.cluster.spawn(`worker-${slot}.${this.generation++}`, this.envOf(slot));
    this.slots[slot] = node;
    void node.exited.then((exit) => {
      if (!this.supervising) return;
      if (exit.signal !== 'SIGKILL')
        this.unexpected.push(`${node.name} exited (code ${exit.code}, signal ${exit.signal})`);
      this.start(slot);
    });
    return node;
  }

  stop(): void {
    this.supervising = false;
  }
}

let logDir: string;
let world: World | undefined;
const figures: string[] = [];

describe('order per key under chaos: worker processes SIGKILLed and handlers failing while 50 keys × 100 events flow', () => {
  beforeAll(() => {
    assertEntryBuilt(compiledEntry(SOURCE));
    logDir = mkdtempSync(join(tmpdir(), 'nest-outbox-ordering-logs-'));
    console.log(`ordering chaos: seed ${SEED} (replay with ORDER_SEED=${SEED})`);
  });

  afterEach(async () => {
    await world?.dispose();
    world = undefined;
  }, 60_000);

  afterAll(() => {
    console.log(
      [...figures, `seed ${SEED}; logs: ${KEEP_LOGS ? logDir : '(removed; ORDER_KEEP_LOGS=1 keeps them)'}`].join('\n'),
    );
    if (!KEEP_LOGS && logDir) rmSync(logDir, { recursive: true, force: true });
  });

  it('3 workers, 3 relays, random failures and SIGKILLs: every key in order for every ordered handler, 0 lost, 0 duplicate effects, nothing held', async () => {
    const keys = 50;
    const events = 100;
    const total = keys * events;
    const maxKills = 10;
    const w = (world = await World.create('ordering_chaos', logDir));
    const common: NodeEnv = {
      SEED,
      RELAY_INTERVAL_MS: 200,
      LEASE_MS: 3000,
      BATCH_SIZE: 200,
    };
    // Workers 0 and 1 also relay, so relays die with them (leases run out, rows are claimed again).
    const workers = new Workers(w.cluster, (slot) => ({
      ...common,
      RELAY: slot < 2,
      WORKER: 1,
      CONCURRENCY: 8,
      ATTEMPTS: 5,
      BACKOFF_MS: 300,
      LOCK_DURATION_MS: 4000,
      STALLED_INTERVAL_MS: 2000,
      HANDLER_DELAY_MS: 4,
      FAIL_FRACTION: 0.03,
    }));
    await Promise.all([0, 1, 2].map((slot) => workers.start(slot).ready));

    // Only once the workers registered the service's handlers: a message with no subscriber is not routed.
    const startedAt = Date.now();
    const producer = w.cluster.spawn('producer', {
      ...common,
      RELAY: 1,
      WORKER: 0,
      PRODUCE_KEYS: keys,
      PRODUCE_EVENTS: events,
      FLUSH_AGGREGATES: 5,
      PRODUCE_PARALLEL: 3,
      // 50 rounds of ~100 events: the pauses alone make the flow last 20 s, longer than the kills take.
      PRODUCE_PAUSE_MS: 400,
    });
    let producedAt: number | undefined;
    void producer
      .waitFor('produce-done', () => true, 300_000)
      .then(
        () => (producedAt = Date.now()),
        () => undefined,
      );

    // Held keys every 250 ms; every 10 s a point of the timeline printed with the figures.
    let maxHeld = 0;
    let sampling = true;
    const timeline: string[] = [];
    const sampler = (async () => {
      for (let tick = 0; sampling; tick++) {
        const held = await w.heldKeys().catch(() => 0);
        maxHeld = Math.max(maxHeld, held);
        if (tick % 40 === 39) {
          const done = await w.count('select count(*)::int as n from effect').catch(() => -1);
          const jobs = await w.jobs().catch(() => undefined);
          timeline.push(
            `${Math.round((Date.now() - startedAt) / 1000)}s ${done} done ${held} held ${jobs?.waiting}w ${jobs?.delayed}d`,
          );
        }
        await sleep(250);
      }
    })();

    // Kills while messages flow: every 0.5–2.5 s a worker, chosen by the seed, is SIGKILLed — half
    // of the time from inside a handler's open transaction (SIGUSR2) — and replaced at once. The
    // producer's pauses keep the flow going longer than the kills take: with 100 ms pauses, and each
    // kill waiting for its replacement to boot, the flow settled after 8 or 9 of them.
    const next = seededRandom(SEED ^ 0x9e3779b9);
    let kills = 0;
    let inHandler = 0;
    let lastKillAt = 0;
    const flowing = async () =>
      producedAt === undefined || (await w.count('select count(*)::int as n from effect')) < HANDLERS.length * total;
    while (kills < maxKills && (await flowing())) {
      await sleep(500 + next() * 2000);
      const slot = Math.floor(next() * 3);
      const node = workers.slots[slot];
      await node.ready;
      if (next() < 0.5) {
        node.signal('SIGUSR2');
        // It dies in its next handler; should none run for a while, it is killed outright.
        await Promise.race([node.waitFor('dying-in-handler', () => true, 5000).catch(() => undefined), node.exited]);
        if (node.last('dying-in-handler')) inHandler++;
      }
      node.signal('SIGKILL');
      expect((await node.exited).signal).toBe('SIGKILL');
      kills++;
      lastKillAt = Date.now();
      // Not waiting for the replacement to boot: the next gap runs while it does (a slot picked
      // again is waited for above), so the kills keep their pace while messages flow.
    }

    const calmFrom = Math.max(lastKillAt, producedAt ?? 0);
    await waitUntil(
      'every effect in, nothing queued or held',
      () => w.quiet(HANDLERS.length * total),
      300_000,
      250,
    ).catch(async (error: unknown) => {
      throw new Error(
        `${(error as Error).message}\njobs ${JSON.stringify(await w.jobs())}, held ${await w.heldKeys()}\n${w.cluster.errorLines().join('\n')}`,
      );
    });
    const settledAt = Date.now();
    sampling = false;
    await sampler;
    workers.stop();

    const failures = await w.count('select count(*)::int as n from injected_failure');
    const redispatched = await w.count('select count(*)::int as n from outbox_message where attempts > 1');
    figures.push(
      `ordering chaos: ${total} events × ${HANDLERS.length} handlers (2 ordered), 3 workers + producer, 3 relays; ` +
        `kills ${kills} (${inHandler} inside a handler's transaction), failures injected ${failures}, ` +
        `rows re-dispatched ${redispatched}; produced in ${(((producedAt ?? settledAt) - startedAt) / 1000).toFixed(1)} s, ` +
        `settled ${((settledAt - calmFrom) / 1000).toFixed(1)} s after the last kill/write, ` +
        `total ${((settledAt - startedAt) / 1000).toFixed(1)} s; max held keys ${maxHeld}`,
      `  timeline (effects of ${HANDLERS.length * total}, held keys, jobs waiting and delayed): ${timeline.join(' | ')}`,
    );

    expect(await w.orderViolations(ORDERED, events)).toEqual([]);
    expect(await w.exactlyOnce(HANDLERS)).toEqual(
      [...HANDLERS].sort().map((handler) => ({ handler, effects: total, lost: 0, duplicates: 0, inbox: total })),
    );
    expect(await w.count('select count(*)::int as n from outbox_message')).toBe(total);
    expect(await w.jobs()).toEqual({ waiting: 0, active: 0, delayed: 0, failed: 0 });
    // Every ordered handler stands at the end of every key, nothing blocked or parked ahead of it.
    expect(
      await w.sql(`select handler, count(*)::int as keys, min(last_seq)::int as min, max(last_seq)::int as max,
        count(blocked_seq)::int as blocked from inbox_message_position group by 1 order by 1`),
    ).toEqual([...ORDERED].sort().map((handler) => ({ handler, keys, min: events, max: events, blocked: 0 })));
    expect(await w.heldKeys()).toBe(0);

    // The chaos happened: kills (some mid-transaction) and failures of ordered and unordered handlers.
    expect(kills).toBe(maxKills);
    expect(inHandler).toBeGreaterThan(0);
    expect(
      await w
        .sql('select handler, count(*)::int as n from injected_failure group by 1 order by 1')
        .then((rows) => rows.map((row) => row.handler)),
    ).toEqual([...HANDLERS].sort());
    expect(workers.unexpected).toEqual([]);
    expect(producer.alive).toBe(true);

    // The unordered sibling kept full parallelism: after its own failures it handled later
    // messages of the key meanwhile, and it ran ahead of messages the ordered handlers held back.
    expect(
      await w.count(`select count(*)::int as n from effect m where m.handler = 'Mailer' and exists (
        select 1 from effect e where e.handler = 'Mailer' and e.tally = m.tally and e.n < m.n and e.id > m.id)`),
    ).toBeGreaterThan(0);
    expect(
      await w.count(`select count(*)::int as n from effect m where m.handler = 'Mailer' and exists (
        select 1 from effect e where e.handler = 'LedgerProjector' and e.tally = m.tally and e.n < m.n and e.id > m.id)`),
    ).toBeGreaterThan(0);
  }, 600_000);

  it("a worker killed as it promotes a parked message: the key moves on when the predecessor's job runs again, not at the parked message's own timer", async () => {
    const w = (world = await World.create('ordering_promote', logDir));
    const events = 10;
    const handlers = ['LedgerProjector', 'Mailer'];
    const env: NodeEnv = {
      SEED,
      HANDLERS: handlers.join(','),
      RELAY_INTERVAL_MS: 200,
      LOCK_DURATION_MS: 2000,
      STALLED_INTERVAL_MS: 1000,
      ATTEMPTS: 100,
      BACKOFF_MS: 1000,
    };
    // The key's first message fails for 35 s: its successors are parked and set aside again and
    // again, 1, 2, 4 … 32 s each time, so when it finally succeeds the next one sleeps for long.
    const worker = {
      ...env,
      WORKER: 1,
      RELAY: 1,
      FAIL_KEY: 'tally-00',
      FAIL_FOR_MS: 35_000,
    };
    const doomed = w.cluster.spawn('doomed', { ...worker, KILL_ON_PROMOTE: 1 });
    await doomed.ready;
    const producer = w.cluster.spawn('producer', {
      ...env,
      WORKER: 0,
      RELAY: 1,
      PRODUCE_KEYS: 1,
      PRODUCE_EVENTS: events,
      FLUSH_AGGREGATES: 1,
    });
    await producer.waitFor('produce-done');

    // Its predecessor committed; the process dies as the promotion starts: the promotion is lost.
    const { jobId } = await doomed.waitFor('killing-on-promote', () => true, 90_000);
    const killedAt = Date.now();
    const dueAt = await w.delayedUntil(String(jobId));
    expect((await doomed.exited).signal).toBe('SIGKILL');
    const fresh = w.cluster.spawn('fresh', worker);
    await fresh.ready;
    await waitUntil('the key handled to its end', () => w.quiet(handlers.length * events), 120_000, 100);
    const settledAt = Date.now();
    const held = await w.count('select count(*)::int as n from injected_failure where held');
    figures.push(
      `promotion crash: key held by ${held} failures, the process promoting its successor killed; ` +
        `the successor's own timer was ${(((dueAt ?? killedAt) - killedAt) / 1000).toFixed(1)} s away, ` +
        `the key moved on and settled ${((settledAt - killedAt) / 1000).toFixed(1)} s after the kill`,
    );

    // The lost promotion mattered: the successor was parked, due back only much later by itself ...
    expect(dueAt).toBeDefined();
    expect(dueAt! - killedAt).toBeGreaterThan(8000);
    // ... and did not wait for that.
    expect(settledAt).toBeLessThan(dueAt!);
    expect(held).toBeGreaterThan(5);
    expect(await w.orderViolations(['LedgerProjector'], events)).toEqual([]);
    expect(await w.exactlyOnce(handlers)).toEqual(
      [...handlers].sort().map((handler) => ({ handler, effects: events, lost: 0, duplicates: 0, inbox: events })),
    );
    expect(await w.jobs()).toEqual({ waiting: 0, active: 0, delayed: 0, failed: 0 });
    expect(await w.heldKeys()).toBe(0);
  }, 180_000);
});
