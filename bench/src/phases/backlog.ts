import { MikroORM } from '@mikro-orm/postgresql';
import { Queue } from 'bullmq';
import { OutboxMonitor } from 'nest-outbox';
import { BootClock, SomethingHappened, startBenchApp, ormOf } from '../bench.app.js';
import {
  emptyTables,
  liveHeapMB,
  now,
  obliterateQueue,
  redisConnection,
  rssMB,
  sleep,
  withSql,
  type Bench,
} from '../harness.js';
import type { BaselineResult } from './baseline.js';

export interface RssSample {
  /** Percent of the backlog dispatched when sampled. */
  percent: number;
  seconds: number;
  mb: number;
}

export interface BacklogResult {
  rows: number;
  /** Time to write the backlog (not part of the rate). */
  writeSeconds: number;
  /** Boot finished (relay woken) → every row marked dispatched. */
  seconds: number;
  rowsPerSecond: number;
  /** rowsPerSecond / baseline addBulk-only jobs per second. */
  ratioToAddBulk: number | null;
  rssBeforeMB: number;
  rssPeakMB: number;
  /** RSS when 25, 50, 75 and 100 % of the rows were dispatched. */
  rssAtQuartersMB: number[];
  /**
   * Live heap (heapUsed right after a full GC) when the app booted, before the first claim, and
   * after the last row. RSS alone cannot show flatness: V8 lets the heap grow to a size set by the
   * allocation rate before it collects, so RSS climbs for seconds whatever the backlog. What the
   * relay retains is the live heap; if it kept anything per row, it would end higher than it began.
   * Taken only at the two ends, so the forced GCs do not shrink the peak RSS measured between them.
   */
  liveHeapAtBootMB: number;
  liveHeapAfterMB: number;
  liveHeapGrowthMB: number;
  samples: RssSample[];
}

/**
 * e. A backlog written while no relay runs (an outage, a deploy), then the relay alone with the
 * worker off: how fast it drains into BullMQ and whether its memory stays flat meanwhile.
 */
export async function backlogPhase(bench: Bench, baseline: BaselineResult | undefined): Promise<BacklogResult> {
  const rows = bench.sizes.backlogRows;
  await emptyTables(bench.databaseUrl);
  bench.progress(`writing ${rows} pending rows (multi-row SQL, same shape as captured rows)`);
  const writeStarted = now();
  await writeBacklog(bench.databaseUrl, rows);
  const writeSeconds = (now() - writeStarted) / 1000;

  const queueName = `${bench.runId}-backlog`;
  const rssBeforeMB = rssMB();
  const samples: RssSample[] = [];
  const quarters: number[] = [];
  let peak = rssBeforeMB;
  const app = await startBenchApp({
    databaseUrl: bench.databaseUrl,
    outbox: { redis: bench.redisUrl, prefix: queueName, worker: { enabled: false } },
  });
  try {
    const { bootedAt: started, liveHeapMB: liveHeapAtBootMB } = app.get(BootClock);
    const monitor = app.get(OutboxMonitor);
    const dispatched = () => monitor.processCounters().relay.dispatched;
    bench.progress(`relay draining ${rows} rows (worker off)`);
    let lastPrint = now();
    let lastSample = 0;
    // Polls an in-memory counter (no query), so watching costs the relay nothing.
    while (dispatched() < rows) {
      await sleep(5);
      const t = now();
      const done = dispatched();
      const rss = rssMB();
      peak = Math.max(peak, rss);
      while (quarters.length < 4 && done >= (rows * (quarters.length + 1)) / 4) quarters.push(rss);
      if (t - lastSample >= 100) {
        samples.push({ percent: (100 * done) / rows, seconds: (t - started) / 1000, mb: rss });
        lastSample = t;
      }
      if (t - lastPrint >= 2000) {
        bench.progress(`  ${done}/${rows} dispatched, RSS ${rss.toFixed(0)} MB`);
        lastPrint = t;
      }
      if (t - started > 600_000) throw new Error(`Backlog not drained after 600 s (${done}/${rows})`);
    }
    const seconds = (now() - started) / 1000;
    samples.push({ percent: 100, seconds, mb: rssMB() });
    const liveHeapAfterMB = liveHeapMB();
    await check(ormOf(app), bench.redisUrl, queueName, rows);
    const rowsPerSecond = rows / seconds;
    return {
      rows,
      writeSeconds,
      seconds,
      rowsPerSecond,
      ratioToAddBulk: baseline ? rowsPerSecond / baseline.addBulkPerSecond : null,
      rssBeforeMB,
      rssPeakMB: peak,
      rssAtQuartersMB: quarters,
      liveHeapAtBootMB,
      liveHeapAfterMB,
      liveHeapGrowthMB: liveHeapAfterMB - liveHeapAtBootMB,
      samples,
    };
  } finally {
    await app.close();
    await obliterateQueue(bench.redisUrl, 'bench', queueName);
  }
}

/**
 * Inserts `rows` pending rows in one statement per 25k: UUID v7 ids in time order (ms, then a
 * 12-bit counter, variant bits, random tail) as newMessageId() makes them, a real payload of the
 * bench event and the headers capture writes.
 */
async function writeBacklog(url: string, rows: number): Promise<void> {
  const payload = JSON.stringify(new SomethingHappened('00000000-0000-0000-0000-000000000000', 0, Date.now()));
  const baseMs = Date.now() - 60_000;
  await withSql(url, async (execute) => {
    for (let from = 0; from < rows; from += 25_000) {
      const to = Math.min(rows, from + 25_000) - 1;
      await execute(
        `insert into outbox_message (id, type, payload, headers, aggregate_type, aggregate_id, occurred_at, attempts)
         select r.id, 'bench.something-happened.v1', jsonb_set(?::jsonb, '{aggregateId}', to_jsonb(r.agg)),
                jsonb_build_object('messageId', r.id, 'correlationId', r.id, 'occurredAt', now()),
                'BenchAggregate', r.agg, now(), 0
         from (select (lpad(to_hex(?::bigint + g / 4096), 12, '0') || '7' || lpad(to_hex(g % 4096), 3, '0')
                       || '8' || substr(md5(random()::text), 1, 15))::uuid as id,
                      gen_random_uuid()::text as agg
               from generate_series(?::int, ?::int) g) r`,
        [payload, baseMs, from, to],
      );
    }
    // A real backlog builds up over minutes and autovacuum analyses it; give the planner the same statistics.
    await execute('analyze outbox_message');
  });
}

/** The relay's own counter is trusted only if the database and the queue agree with it. */
async function check(orm: MikroORM, redisUrl: string, queueName: string, rows: number): Promise<void> {
  const [row] = await orm.em
    .getConnection()
    .execute<Array<{ pending: number }>>(
      'select count(*)::int as pending from outbox_message where dispatched_at is null',
    );
  const queue = new Queue('bench', { prefix: queueName, connection: redisConnection(redisUrl) });
  const jobs = await queue.count().finally(() => queue.close());
  if (row.pending !== 0 || jobs !== rows)
    throw new Error(`Backlog check failed: ${row.pending} rows still pending, ${jobs}/${rows} jobs in the queue`);
}
