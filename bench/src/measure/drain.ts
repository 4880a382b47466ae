import { join } from 'node:path';
import { Queue } from 'bullmq';
import { withConnection } from '../../../test/support/database.js';
import { writeBacklog } from '../backlog-rows.js';
import { emptyTables } from '../bench-db.js';
import { redisConnection } from '../bullmq-jobs.js';
import { WORKER_CONCURRENCY, now, ticker, type Bench } from '../harness.js';
import { allHandled, startNode } from '../nodes/node-process.js';
import { benchQueueNames, type OutboxRole } from '../outbox-options.js';
import { summariseProfile, type ProfileSummary } from '../profile-top.js';
import { callsPerEvent, readCalls, type Calls } from './calls.js';
import { cpuBetween, cpuSnapshot, type CpuReport } from './cpu.js';
import { cpuSources } from './end-to-end.js';

export interface RssSample {
  seconds: number;
  mb: number;
}

/** Enough points for the chart; a 100k drain would otherwise keep over a thousand. */
const RSS_POINTS = 120;

/** Every k-th sample, plus the highest one, rounded: results.json stays small. */
function thin(samples: RssSample[]): RssSample[] {
  const step = Math.max(1, Math.ceil(samples.length / RSS_POINTS));
  const peak = samples.reduce((top, s) => (s.mb > top.mb ? s : top), samples[0]);
  return samples
    .filter((s, i) => i % step === 0 || s === peak || i === samples.length - 1)
    .map((s) => ({ seconds: Math.round(s.seconds * 100) / 100, mb: Math.round(s.mb * 10) / 10 }));
}

/** One drain of a backlog by one outbox process. */
export interface DrainRun {
  rows: number;
  /** Time to write the backlog (not part of the rate). */
  writeSeconds: number;
  /** Boot finished (the relay starts) → the last row dispatched, or the last handler committed. */
  seconds: number;
  perSecond: number;
  /** Highest RSS of the outbox process (VmHWM: a true peak, boot included). */
  peakRssMB: number;
  /** RSS of the outbox process, sampled every 100 ms and thinned to at most RSS_POINTS (the peak kept). */
  rssSamples: RssSample[];
  /**
   * Live heap (heapUsed right after a full GC) at boot and after the drain. RSS alone cannot show
   * flatness: V8 lets the heap grow to a size set by the allocation rate before it collects. What
   * the process retains is the live heap; if it kept anything per row, it would end higher.
   */
  liveHeapAtBootMB: number;
  liveHeapAfterMB: number;
  liveHeapGrowthMB: number;
  cpu: CpuReport;
  /** Per row, statements and Redis commands the outbox process sent (boot included: the drain starts with it). */
  calls: Calls;
  /** `--profile`: where the outbox process's CPU went, from just after its boot to the end of the drain. */
  profiles?: Record<string, ProfileSummary & { file: string }>;
}

/**
 * Writes `rows` pending rows while no relay runs (an outage, a deploy), then boots one outbox
 * process with `role` and waits until its relay dispatched every row (`until: 'dispatched'`) or
 * every handler committed (`'handled'`). Then checks that the database (and queue) agree.
 */
export async function measureDrain(
  bench: Bench,
  role: OutboxRole,
  rows: number,
  until: 'dispatched' | 'handled',
): Promise<DrainRun> {
  await emptyTables(bench.databaseUrl);
  bench.progress(`writing ${rows} pending rows`);
  const writeStarted = now();
  await writeBacklog(bench.databaseUrl, rows);
  const writeSeconds = (now() - writeStarted) / 1000;
  bench.progress(
    `draining ${rows} rows (${role.worker ? 'relay + worker, until every handler committed' : 'relay alone'})`,
  );
  const node = await startNode(bench, role.worker ? 'outbox' : 'relay', {
    kind: 'outbox',
    ...role,
    poolMax: WORKER_CONCURRENCY + 4,
  });
  try {
    if (bench.profile) await node.call('profileStart', { samplingIntervalUs: 500 });
    const sources = cpuSources(bench, { outbox: [node] });
    const cpuStart = cpuSnapshot(sources);
    const rssSamples: RssSample[] = [];
    const sample = setInterval(() => {
      const memory = node.memory();
      if (memory) rssSamples.push({ seconds: (now() - node.bootedAt) / 1000, mb: memory.rssMB });
    }, 100);
    let handled = 0;
    const stop = ticker(5000, () =>
      bench.progress(
        `  ${until === 'handled' ? `${handled}/${rows} handled, ` : ''}RSS ${Math.round(node.memory()?.rssMB ?? 0)} MB`,
      ),
    );
    let endedAt: number;
    try {
      endedAt =
        until === 'handled'
          ? await allHandled([node], rows, 1_200_000, (count) => (handled = count))
          : (await node.call('relayDispatched', { atLeast: rows })).at;
    } finally {
      clearInterval(sample);
      stop();
    }
    const cpu = cpuBetween(cpuStart, cpuSnapshot(sources), sources, rows);
    const calls = callsPerEvent({}, await readCalls({ outbox: [node] }), rows);
    const peakRssMB = node.memory()?.peakMB ?? NaN;
    let profiles: DrainRun['profiles'];
    if (bench.profile) {
      const file = join(bench.outDir, `drain-${until}-outbox.cpuprofile`);
      await node.call('profileStop', { file });
      profiles = { outbox: { file, ...summariseProfile(file, 15, rows) } };
    }
    const liveHeapAfterMB = await node.call('heap');
    await node.close();
    await check(bench, rows, until);
    const seconds = (endedAt - node.bootedAt) / 1000;
    return {
      rows,
      writeSeconds,
      seconds,
      perSecond: rows / seconds,
      peakRssMB,
      rssSamples: thin(rssSamples),
      liveHeapAtBootMB: node.liveHeapAtBootMB,
      liveHeapAfterMB,
      liveHeapGrowthMB: liveHeapAfterMB - node.liveHeapAtBootMB,
      cpu,
      calls,
      ...(profiles ? { profiles } : {}),
    };
  } catch (error) {
    node.kill();
    throw error;
  }
}

/** The process's own counters are trusted only if the database and the queue agree with them. */
async function check(bench: Bench, rows: number, until: 'dispatched' | 'handled'): Promise<void> {
  const [counts] = await withConnection(bench.databaseUrl, (execute) =>
    execute(`select (select count(*) from outbox_message where dispatched_at is null)::int as pending,
                    (select count(*) from inbox_message)::int as handled`),
  );
  let jobs = rows;
  if (until === 'dispatched') {
    jobs = 0;
    for (const name of benchQueueNames()) {
      const queue = new Queue(name, { connection: redisConnection(bench.redisUrl), prefix: bench.prefix });
      jobs += await queue.count().finally(() => queue.close());
    }
  }
  const handledOk = until === 'dispatched' || counts.handled === rows;
  if (counts.pending !== 0 || jobs !== rows || !handledOk)
    throw new Error(
      `Drain check failed: ${counts.pending} rows still pending, ${jobs}/${rows} jobs waiting, ${counts.handled} inbox rows`,
    );
}
