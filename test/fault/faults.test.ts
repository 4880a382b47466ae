/**
 * Fault injection (issue 3): the orders example runs as several OS processes (relay and worker
 * split or together) against a private PostgreSQL cluster and a private Redis that this suite may
 * kill; processes, servers and leases are killed, frozen and stopped while events flow. Every
 * scenario ends with the same check: every event's handler effects exactly once, nothing pending,
 * nothing leased, no dead letter, one BullMQ job per message.
 *
 * Needs `npm run build` first (the process entry is dist/test/fault/processes/orders-node.js);
 * `npm test` does it. FAULT_SOAK=1 runs longer streams; FAULT_KEEP_LOGS=1 keeps the processes' logs.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { PrivatePostgres } from '../support/private-postgres.js';
import { waitUntil } from '../support/wait.js';
import { assertEntryBuilt, type NodeProcess } from './support/cluster.js';
import { DurableRedis } from './support/durable-redis.js';
import { EXACTLY_ONCE, exactlyOnceView, type Verification } from './support/probe.js';
import { Scenario, sleep } from './support/scenario.js';
import { Scoreboard, type ScenarioFigures } from './support/scoreboard.js';

const SOAK = process.env.FAULT_SOAK === '1';
const KEEP_LOGS = process.env.FAULT_KEEP_LOGS === '1';
/**
 * BullMQ re-runs a dead worker's jobs once their lock expired and a stalled check ran: 30 s + up to
 * 30 s with the defaults (measured 33–62 s after the last kill). The quick run shortens both
 * (worker.lockDurationMs / stalledIntervalMs) where a scenario waits for that; the soak run keeps
 * the library defaults.
 */
const FAST_STALLED = SOAK ? {} : { LOCK_DURATION_MS: 5000, STALLED_INTERVAL_MS: 2000 };
/** Handler runs per order once paid: OrderPlaced (projector, confirmation), OrderPaid (projector, loyalty), LoyaltyPointsAwarded (statement). */
const INBOX_PER_ORDER = 5;

const board = new Scoreboard();
let postgres: PrivatePostgres | undefined;
let redis: DurableRedis | undefined;
let logDir = '';
let current: Scenario | undefined;

async function scenario(
  id: string,
  title: string,
  body: (s: Scenario, f: ScenarioFigures) => Promise<void>,
): Promise<void> {
  const figures = board.start(title);
  try {
    // A scenario that failed during an outage must not take the next one down with it.
    if (!redis!.isRunning) await redis!.start();
    if (!postgres!.isRunning) await postgres!.start();
    current = await Scenario.create(id, { postgresUrl: postgres!.url(), redisUrl: redis!.url, logDir }, figures);
    await body(current, figures);
    figures.pass();
  } catch (error) {
    figures.fail(error);
    throw error;
  }
}

/** The check every scenario ends with; on a mismatch the processes' error lines are printed before the diff. */
async function expectExactlyOnce(s: Scenario, v: Verification): Promise<void> {
  s.figures.record(v);
  const view = exactlyOnceView(v);
  if (!isDeepStrictEqual(view, EXACTLY_ONCE)) {
    console.error(`${s.id}: exactly-once check failed\n${JSON.stringify(view, null, 1)}\n${await s.describe()}`);
  }
  expect(view).toEqual(EXACTLY_ONCE);
}

/**
 * Places `orders` orders (and pays them) from a process that does nothing else and exits cleanly,
 * leaving every row pending for the relays the scenario starts (no sending on commit).
 */
async function produce(s: Scenario, orders: number): Promise<void> {
  const producer = s.cluster.spawn('producer', {
    RELAY: 0,
    WORKER: 0,
    DISPATCH_ON_COMMIT: 0,
    PRODUCE_ORDERS: orders,
    PRODUCE_BATCH: 50,
    EXIT_AFTER_PRODUCE: 1,
  });
  expect(await producer.exited).toMatchObject({ code: 0 });
}

function unexpectedExits(s: Scenario): string[] {
  return s.cluster.processes
    .filter((node) => !node.alive)
    .map((node) => `${node.name} exited (code ${node.exit!.code}, signal ${node.exit!.signal})`);
}

/**
 * `doomed` SIGKILLs itself right after its `KILL_AFTER_ADDBULK`-th addBulk resolved: returns that
 * batch's ids, checked in BullMQ's hands but unmarked, on their first attempt.
 */
async function killedAfterAddBulk(s: Scenario, f: ScenarioFigures, doomed: NodeProcess): Promise<string[]> {
  const ids = (await doomed.waitFor('killing')).ids as string[];
  expect((await doomed.exited).signal).toBe('SIGKILL');
  f.kills++;
  const stranded = await s.probe.rows(ids);
  expect(stranded).toHaveLength(ids.length);
  expect(stranded.filter((row) => !row.dispatched).length).toBe(ids.length);
  expect(stranded.every((row) => row.attempts === 1)).toBe(true);
  return ids;
}

/** A relay started now sends the killed process's rows again once their lease ran out; every effect happens once. */
async function redispatchedOnce(s: Scenario, f: ScenarioFigures, ids: string[], died: string[]): Promise<void> {
  const fresh = s.cluster.spawn('relay-2', { RELAY: 1, WORKER: 0, LEASE_MS: 1000 });
  f.restarts++;
  await fresh.ready;
  await s.settle('everything relayed and handled', 120_000);
  const redispatched = await s.probe.rows(ids);
  expect(redispatched.filter((row) => row.dispatched && row.attempts === 2).length).toBe(ids.length);
  await expectExactlyOnce(s, await s.probe.verify());
  expect(unexpectedExits(s).filter((line) => !died.some((name) => line.startsWith(name)))).toEqual([]);
}

describe('fault injection: processes, Redis and PostgreSQL killed while events flow', () => {
  beforeAll(async () => {
    assertEntryBuilt();
    logDir = mkdtempSync(join(tmpdir(), 'nest-outbox-fault-logs-'));
    postgres = await PrivatePostgres.start();
    redis = await DurableRedis.start();
  }, 120_000);

  afterEach(async () => {
    await current?.dispose();
    current = undefined;
  }, 60_000);

  afterAll(async () => {
    await current?.dispose();
    await Promise.allSettled([redis?.destroy(), postgres?.destroy()]);
    console.log(`${board.table()}\nlogs: ${KEEP_LOGS ? logDir : '(removed; FAULT_KEEP_LOGS=1 keeps them)'}`);
    if (!KEEP_LOGS && logDir) rmSync(logDir, { recursive: true, force: true });
  }, 120_000);

  it(
    '1. a relay SIGKILLed after addBulk resolved and before marking: a fresh relay re-dispatches the batch, effects happen once',
    () =>
      scenario('s1', '1 relay killed after addBulk', async (s, f) => {
        const orders = SOAK ? 2000 : 300;
        await produce(s, orders);
        const worker = s.cluster.spawn('worker', { RELAY: 0, WORKER: 1 });
        await worker.ready;

        // Its 3rd batch is in BullMQ when the process dies; the 1st and 2nd were marked. Batches of
        // 50 go to BullMQ as one addBulk each (larger ones as several), so the 3rd call is the 3rd batch.
        const doomed = s.cluster.spawn('relay-1', {
          RELAY: 1,
          WORKER: 0,
          BATCH_SIZE: 50,
          LEASE_MS: 1000,
          KILL_AFTER_ADDBULK: 3,
        });
        const ids = await killedAfterAddBulk(s, f, doomed);
        expect(ids).toHaveLength(50);

        // The worker handles the enqueued batch; the re-dispatch below then meets completed jobs.
        await waitUntil(
          "the killed relay's batch handled",
          async () => (await s.probe.handledCount(ids)) === 2 * ids.length,
          60_000,
          100,
        );

        await redispatchedOnce(s, f, ids, ['producer', 'relay-1']);
      }),
    240_000,
  );

  it(
    '1b. a producer sending on commit (relay.dispatchOnCommit) SIGKILLed after its addBulk resolved and before marking: a relay re-dispatches once the lease ran out, effects happen once',
    () =>
      scenario('s1b', '1b producer sending on commit killed after addBulk', async (s, f) => {
        // Subscriptions registered first: rows committed before any registration would be handed back.
        const worker = s.cluster.spawn('worker', { RELAY: 0, WORKER: 1 });
        await worker.ready;

        // Flushes of 20 orders: each commit's rows go to BullMQ as one addBulk (more than 10 jobs), sent by the producer.
        const doomed = s.cluster.spawn('producer', {
          RELAY: 0,
          WORKER: 0,
          DISPATCH_ON_COMMIT: 1,
          LEASE_MS: 1000,
          PRODUCE_ORDERS: SOAK ? 2000 : 300,
          PRODUCE_BATCH: 20,
          KILL_AFTER_ADDBULK: 3,
        });
        // Written leased to the producer (attempt 1 with no relay running) and enqueued, never marked.
        const ids = await killedAfterAddBulk(s, f, doomed);
        expect(ids.length).toBeGreaterThan(10);
        await redispatchedOnce(s, f, ids, ['producer']);
      }),
    240_000,
  );

  it(
    '2. three processes, workers SIGKILLed at random mid-handler every ~0.5 s and restarted: no loss, no double effect',
    () =>
      scenario('s2', '2 workers killed mid-handler', async (s, f) => {
        const orders = SOAK ? 6667 : 1667; // ≥ 5,000 events (3 per order)
        const killWindowMs = SOAK ? 300_000 : 30_000;
        const workerEnv = { RELAY: 0, WORKER: 1, HANDLER_DELAY_MS: 10, ...FAST_STALLED };
        const producer = s.cluster.spawn('producer', {
          RELAY: 1,
          WORKER: 0,
          RELAY_INTERVAL_MS: 100,
          PRODUCE_ORDERS: orders,
          PRODUCE_BATCH: 25,
          PRODUCE_PAUSE_MS: 50,
        });
        let producerDone = false;
        void producer
          .waitFor('produce-done', () => true, 600_000)
          .then(
            () => (producerDone = true),
            () => undefined,
          );

        const slots: NodeProcess[] = [];
        const unexpected: string[] = [];
        const killedByTest = new Set<NodeProcess>();
        const armed = new Set<NodeProcess>();
        let supervising = true;
        let generation = 0;
        let midHandler = 0;
        const start = (slot: number) => {
          const node = s.cluster.spawn(`worker-${slot}.${generation++}`, workerEnv);
          slots[slot] = node;
          void node.exited.then((exit) => {
            if (!supervising) return; // the end-of-test cleanup, not a fault
            if (exit.signal === 'SIGKILL') {
              f.kills++;
              if (armed.has(node) && !killedByTest.has(node)) midHandler++;
            } else {
              unexpected.push(`${node.name} exited with code ${exit.code}, signal ${exit.signal}`);
            }
            f.restarts++;
            start(slot);
          });
        };
        start(0);
        start(1);
        await Promise.all([producer.ready, slots[0].ready, slots[1].ready]);

        // Every ~0.5 s one running worker dies: half the time SIGKILL from outside at a random
        // moment, half the time armed (SIGUSR2) to SIGKILL itself inside its next handler, after
        // the handler's writes and inbox mark, before the commit. Kills go on while work is left.
        const killStart = Date.now();
        let lastKillAt = killStart;
        while (Date.now() - killStart < killWindowMs) {
          await sleep(300 + Math.random() * 400);
          if (producerDone && (await s.probe.isQuiet())) break;
          const candidates = slots.filter((node) => node.alive && node.last('ready') && !armed.has(node));
          if (candidates.length === 0) continue;
          const target = candidates[Math.floor(Math.random() * candidates.length)];
          if (Math.random() < 0.5) {
            killedByTest.add(target);
            target.signal('SIGKILL');
          } else {
            armed.add(target);
            target.signal('SIGUSR2');
          }
          lastKillAt = Date.now();
        }
        // Armed workers that found no handler to die in are killed now, and replaced once more.
        for (const node of slots) {
          if (node.alive && armed.has(node)) {
            killedByTest.add(node);
            node.signal('SIGKILL');
            lastKillAt = Date.now();
          }
        }
        const killPhaseMs = Date.now() - killStart;
        await waitUntil(
          'two workers running',
          () => slots.every((node) => node.alive && node.last('ready') !== undefined),
          60_000,
          50,
        );
        const settledAt = await s.settle('stalled jobs re-run and everything handled', 240_000);
        supervising = false;
        f.recoveryMs = settledAt - lastKillAt;
        f.note(
          `${f.kills} SIGKILLs in ${(killPhaseMs / 1000).toFixed(0)} s, ${midHandler} of them inside a handler's open transaction; quiet ${(f.recoveryMs / 1000).toFixed(1)} s after the last kill (stalled jobs wait for BullMQ's lock expiry + stalled check: ${SOAK ? 'defaults 30 s + 30 s' : 'lock 5 s, check every 2 s'})`,
        );

        await expectExactlyOnce(s, await s.probe.verify());
        expect(unexpected).toEqual([]);
        expect(producer.alive).toBe(true);
        expect(f.kills).toBeGreaterThanOrEqual(10);
        expect(midHandler).toBeGreaterThanOrEqual(1);
      }),
    480_000,
  );

  it(
    '3. Redis crashed and restarted in the middle of ≥ 10,000 events: relays and workers reconnect, no loss, no double effect',
    () =>
      scenario('s3', '3 Redis crash + restart', async (s, f) => {
        const orders = SOAK ? 10_000 : 3334; // ≥ 10,000 events
        const downMs = 3000;
        const node = { RELAY: 1, WORKER: 1, RELAY_INTERVAL_MS: 200, ...FAST_STALLED };
        s.cluster.spawn('node-a', { ...node, PRODUCE_ORDERS: orders, PRODUCE_BATCH: 50 });
        s.cluster.spawn('node-b', node);
        s.cluster.spawn('node-c', node);
        await Promise.all(s.cluster.processes.map((p) => p.ready));

        await waitUntil(
          'a third of the handler runs done',
          async () => (await s.probe.progress()).inbox >= (orders * INBOX_PER_ORDER) / 3,
          180_000,
          100,
        );
        const before = await s.probe.progress();
        await redis!.crash();
        f.kills++;
        await sleep(downMs); // the outage itself
        await redis!.start();
        f.restarts++;
        const restartedAt = Date.now();
        f.note(
          `Redis SIGKILLed (AOF, appendfsync always) at ${before.inbox} of ${orders * INBOX_PER_ORDER} handler runs, down ${downMs / 1000} s`,
        );

        const settledAt = await s.settle('everything relayed and handled after the Redis restart', 240_000);
        f.recoveryMs = settledAt - restartedAt;
        await expectExactlyOnce(s, await s.probe.verify());
        expect(unexpectedExits(s)).toEqual([]);
      }),
    480_000,
  );

  /** PostgreSQL crashes (-m immediate) mid-stream and comes back after `downMs`; nobody restarts a process. */
  const postgresOutage = (id: string, title: string, downMs: number) =>
    scenario(id, title, async (s, f) => {
      const orders = SOAK ? 5000 : 1000;
      const node = { RELAY: 1, WORKER: 1, RELAY_INTERVAL_MS: 200 };
      s.cluster.spawn('node-a', { ...node, PRODUCE_ORDERS: orders, PRODUCE_BATCH: 10, PRODUCE_PAUSE_MS: 100 });
      s.cluster.spawn('node-b', node);
      await Promise.all(s.cluster.processes.map((p) => p.ready));

      await waitUntil(
        'a third of the handler runs done',
        async () => (await s.probe.progress()).inbox >= (orders * INBOX_PER_ORDER) / 3,
        180_000,
        100,
      );
      const before = await s.probe.progress();
      await s.probe.close();
      await postgres!.stop('immediate');
      f.kills++;
      await sleep(downMs); // the outage itself
      await postgres!.start();
      f.restarts++;
      const restartedAt = Date.now();
      await s.openProbe();

      await s.cluster.processes[0].waitFor('produce-done', () => true, 240_000);
      const settledAt = await s.settle('everything relayed and handled after the PostgreSQL restart', 240_000);
      f.recoveryMs = settledAt - restartedAt;
      const v = await s.probe.verify();
      f.note(
        `PostgreSQL stopped -m immediate at ${before.orders} of ${orders} orders, ${before.inbox} of ${orders * INBOX_PER_ORDER} handler runs; ` +
          `down ${downMs / 1000} s; jobs used up to ${v.maxAttempts} of 5 attempts`,
      );
      await expectExactlyOnce(s, v);
      expect(unexpectedExits(s)).toEqual([]);
    });

  it(
    '4a. PostgreSQL crashed and restarted in the middle of a stream (3 s outage): relays, workers and the producer recover by themselves',
    () => postgresOutage('s4a', '4a PostgreSQL down 3 s', 3000),
    480_000,
  );

  it(
    "4b. PostgreSQL down for 20 s, longer than the workers' retry window (5 attempts, 1 s exponential = 15 s): still no message lost",
    () => postgresOutage('s4b', '4b PostgreSQL down 20 s', 20_000),
    480_000,
  );

  it(
    '5. a relay frozen past its lease (SIGSTOP after claiming, SIGCONT later): another relay takes its rows, the late enqueue is harmless',
    () =>
      scenario('s5', '5 relay frozen past its lease', async (s, f) => {
        const orders = SOAK ? 2000 : 300;
        await produce(s, orders);
        const worker = s.cluster.spawn('worker', { RELAY: 0, WORKER: 1 });
        await worker.ready;

        // relay-1 claims its 2nd batch (lease 1 s) and freezes before handing it to BullMQ.
        const frozen = s.cluster.spawn('relay-1', {
          RELAY: 1,
          WORKER: 0,
          BATCH_SIZE: 100,
          LEASE_MS: 1000,
          STOP_BEFORE_ADDBULK: 2,
        });
        const ids = (await frozen.waitFor('stopping')).ids as string[];
        await waitUntil('relay-1 frozen', () => frozen.isStopped(), 10_000, 20);
        const frozenAt = Date.now();

        const other = s.cluster.spawn('relay-2', { RELAY: 1, WORKER: 0, LEASE_MS: 1000 });
        await other.ready;
        await waitUntil(
          "the frozen relay's rows taken over and handled",
          async () => (await s.probe.handledCount(ids)) === 2 * ids.length,
          60_000,
          100,
        );
        await s.settle('everything handled while relay-1 is frozen', 120_000);
        const takenOver = await s.probe.rows(ids);
        expect(takenOver.filter((row) => row.dispatched && row.attempts === 2).length).toBe(ids.length);
        expect(frozen.isStopped()).toBe(true);

        // Thawed, relay-1 finishes what it was doing with rows that are no longer its own.
        frozen.signal('SIGCONT');
        await frozen.waitFor('addbulk', (message) => message.call === 2, 60_000);
        f.recoveryMs = Date.now() - frozenAt;
        f.note(
          `relay-1 frozen ${(f.recoveryMs / 1000).toFixed(1)} s holding ${ids.length} claimed rows (lease 1 s); its late addBulk of them added no job`,
        );
        await s.settle('quiet after relay-1 resumed', 60_000);
        await expectExactlyOnce(s, await s.probe.verify());
        expect(frozen.alive).toBe(true);
        expect(unexpectedExits(s).filter((line) => !line.startsWith('producer'))).toEqual([]);
      }),
    240_000,
  );

  it(
    '6a. SIGTERM while busy: claiming stops, the enqueue in flight is finished and marked, active handlers finish, exit within shutdownTimeoutMs, nothing leased',
    () =>
      scenario('s6a', '6a SIGTERM while busy', async (s, f) => {
        const orders = 400;
        const shutdownTimeoutMs = 10_000;
        await produce(s, orders);

        const busy = s.cluster.spawn('busy', {
          RELAY: 1,
          WORKER: 1,
          BATCH_SIZE: 50,
          CONCURRENCY: 8,
          HANDLER_DELAY_MS: 300,
          ADDBULK_DELAY_MS: 1500,
          SHUTDOWN_TIMEOUT_MS: shutdownTimeoutMs,
          STATUS_MS: 50,
        });
        await busy.waitFor('status', (m) => (m.inHandler as number) > 0 && (m.addBulkInFlight as number) > 0, 60_000);
        const termAt = Date.now();
        busy.signal('SIGTERM');
        const atTerm = await busy.waitFor('sigterm', () => true, 10_000);
        const inFlight = atTerm.addBulkInFlight as string[];
        const exit = await Promise.race([busy.exited, sleep(shutdownTimeoutMs + 20_000).then(() => undefined)]);
        const exitMs = exit ? exit.at - termAt : undefined;
        if (!exit) busy.signal('SIGKILL');
        f.recoveryMs = exitMs;
        f.note(
          `at SIGTERM: ${atTerm.inHandler} handlers running, ${inFlight.length} rows being enqueued; exit after ${exitMs === undefined ? 'never (killed)' : `${(exitMs / 1000).toFixed(1)} s`} (shutdownTimeoutMs ${shutdownTimeoutMs})`,
        );

        const inFlightRows = await s.probe.rows(inFlight);
        const [leased] = await s.probe.sql<{ n: number }>(
          'select count(*)::int as n from outbox_message where dispatched_at is null and locked_until > now()',
        );
        const queueAfter = await s.probe.queueCounts();
        const timedOut = busy.lines.some((line) => line.includes('Shutdown took longer'));
        expect({
          exitedGracefully: exit !== undefined && (exit.signal === 'SIGTERM' || exit.code === 0),
          withinShutdownTimeout: exitMs !== undefined && exitMs < shutdownTimeoutMs,
          hitTheTimeout: timedOut,
          inFlightMarked: inFlightRows.filter((row) => row.dispatched).length,
          leasedRows: leased.n,
          activeJobsLeft: queueAfter.active,
        }).toEqual({
          exitedGracefully: true,
          withinShutdownTimeout: true,
          hitTheTimeout: false,
          inFlightMarked: inFlight.length,
          leasedRows: 0,
          activeJobsLeft: 0,
        });
        expect(inFlight.length).toBeGreaterThan(0);
        expect(atTerm.inHandler).toBeGreaterThan(0);

        const successor = s.cluster.spawn('successor', { RELAY: 1, WORKER: 1 });
        f.restarts++;
        await successor.ready;
        await s.settle('the rest handled by a successor', 120_000);
        await expectExactlyOnce(s, await s.probe.verify());
      }),
    240_000,
  );

  it(
    '6b. SIGTERM with a handler that never returns: the process exits within shutdownTimeoutMs, its claimed batch is released, the job runs again elsewhere',
    () =>
      scenario('s6b', '6b SIGTERM, handler hangs', async (s, f) => {
        const orders = 100;
        const shutdownTimeoutMs = 3000;
        await produce(s, orders);

        const stuck = s.cluster.spawn('stuck', {
          RELAY: 1,
          WORKER: 1,
          BATCH_SIZE: 50,
          HANG_HANDLER: 3,
          ADDBULK_DELAY_MS: 60_000,
          ADDBULK_DELAY_FROM: 2,
          SHUTDOWN_TIMEOUT_MS: shutdownTimeoutMs,
          STATUS_MS: 50,
          ...FAST_STALLED,
        });
        await stuck.waitFor('hanging', () => true, 60_000);
        await stuck.waitFor('status', (m) => (m.addBulkInFlight as number) > 0, 60_000);
        const termAt = Date.now();
        stuck.signal('SIGTERM');
        const atTerm = await stuck.waitFor('sigterm', () => true, 10_000);
        const inFlight = atTerm.addBulkInFlight as string[];
        const exit = await Promise.race([stuck.exited, sleep(shutdownTimeoutMs + 10_000).then(() => undefined)]);
        const exitMs = exit ? exit.at - termAt : undefined;
        const warned = stuck.lines.some((line) => line.includes('Shutdown took longer'));
        if (!exit) {
          stuck.signal('SIGKILL');
          await stuck.exited;
        }
        f.recoveryMs = exitMs;
        f.note(
          `a handler hangs, ${inFlight.length} rows being enqueued at SIGTERM; ` +
            `exit after ${exitMs === undefined ? 'never (SIGKILLed 10 s past the timeout)' : `${(exitMs / 1000).toFixed(1)} s`} (shutdownTimeoutMs ${shutdownTimeoutMs}); ` +
            `"Shutdown took longer" warning ${warned ? 'logged' : 'never logged'}`,
        );

        const [leased] = await s.probe.sql<{ n: number }>(
          'select count(*)::int as n from outbox_message where dispatched_at is null and locked_until > now()',
        );
        const releasedRows = await s.probe.rows(inFlight);
        const shutdown = {
          exited: exit !== undefined,
          // 2 s of slack past the timeout for closing Redis and the ORM and leaving the process.
          withinShutdownTimeout: exitMs !== undefined && exitMs < shutdownTimeoutMs + 2000,
          inFlightReleased: releasedRows.filter((row) => !row.dispatched && !row.locked).length,
          leasedRows: leased.n,
        };

        const successor = s.cluster.spawn('successor', { RELAY: 1, WORKER: 1, ...FAST_STALLED });
        f.restarts++;
        await successor.ready;
        const settledAt = await s.settle('the released batch and the hung job handled by a successor', 180_000);
        f.note(
          `successor quiet ${((settledAt - termAt) / 1000).toFixed(1)} s after the SIGTERM (the hung job waits for BullMQ's stalled check)`,
        );
        const v = await s.probe.verify();
        s.figures.record(v);
        expect(shutdown).toEqual({
          exited: true,
          withinShutdownTimeout: true,
          inFlightReleased: inFlight.length,
          leasedRows: 0,
        });
        expect(inFlight.length).toBeGreaterThan(0);
        await expectExactlyOnce(s, v);
      }),
    300_000,
  );
});
