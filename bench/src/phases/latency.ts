import { emptyTables } from '../bench-db.js';
import type { Bench } from '../harness.js';
import { measureEndToEnd, warmUp, type EndToEndRun } from '../measure/end-to-end.js';
import { deployment, singleProcess, splitDeployment, withTopology, type Topology } from '../nodes/topology.js';
import type { NaiveDualWriteResult } from './naive-dual-write.js';
import { fix, ms, pct, resultOf, type PhaseDefinition, type Row } from './phase.js';
import { runRows } from './run-rows.js';

export interface LatencyResult {
  rate: number;
  seconds: number;
  /** API process + outbox process: the figures the targets read. */
  deployment: EndToEndRun;
  /** The same with `relay.dispatchOnCommit: false`: the relay claims every row. */
  relayOnly: EndToEndRun;
  /** Relay (every row) and worker in processes of their own: what each costs per event, apart. */
  split: EndToEndRun;
  /** Everything in one process (the shape of the 72–81 % of a core). */
  single: EndToEndRun;
  /** `--profile`: a further deployment run under the V8 profiler (its own figures are not the ones above). */
  profiled?: EndToEndRun;
}

/**
 * A steady 200 events/s, open loop (commits start on schedule whatever earlier ones do), one
 * event per transaction: commit → handler start, and what each process spends per event at a
 * rate far below its capacity — where fixed per-wake-up and per-batch costs show.
 */
export const latency: PhaseDefinition<LatencyResult> = {
  name: 'latency',
  title: 'outbox at a steady rate',
  async run(bench) {
    const { latencyRate: rate, latencySeconds: seconds } = bench.sizes;
    const result: LatencyResult = {
      rate,
      seconds,
      deployment: await steady(bench, deployment(bench)),
      relayOnly: await steady(bench, deployment(bench, 1, true)),
      split: await steady(bench, splitDeployment(bench)),
      single: await steady(bench, singleProcess(bench)),
    };
    if (bench.profile) {
      bench.progress('profiled run (V8 CPU profiler in every process)');
      result.profiled = await steady(bench, deployment(bench), 'latency');
    }
    return result;
  },
  rows(r) {
    const rows: Row[] = runRows(r.deployment, { p99: 'latency.p99' });
    rows.push({
      measure: '  outbox process, share of one core',
      value: pct(r.deployment.cpu.byProcess.outbox?.core ?? NaN),
      target: 'latency.outbox-cpu',
    });
    rows.push(...runRows(r.relayOnly), {
      measure: '  outbox process, share of one core',
      value: pct(r.relayOnly.cpu.byProcess.outbox?.core ?? NaN),
    });
    return [...rows, ...runRows(r.split), ...runRows(r.single)];
  },
  targets: [
    {
      id: 'latency.p99',
      label: 'p99 commit → handler start at the steady rate (ms), deployment shape',
      goal: { op: '≤', value: 12 },
      evaluate(all) {
        const r = resultOf<LatencyResult>(all, 'latency');
        const l = r?.deployment.latency;
        const naive = resultOf<NaiveDualWriteResult>(all, 'naiveDualWrite')?.steady.latency;
        if (!l) return { value: null, detail: 'n/a' };
        return {
          value: l.p99,
          detail:
            `p99 ${ms(l.p99)} (p50 ${ms(l.p50)}, p99.9 ${ms(l.p999)})` +
            (naive ? `; naive dual write p99 ${ms(naive.p99)}` : ''),
        };
      },
    },
    {
      id: 'latency.outbox-cpu',
      label: 'outbox process CPU at the steady rate (share of one core)',
      goal: { op: '≤', value: 0.2 },
      evaluate(all) {
        const outbox = resultOf<LatencyResult>(all, 'latency')?.deployment.cpu.byProcess.outbox;
        if (!outbox) return { value: null, detail: 'n/a' };
        return {
          value: outbox.core,
          detail: `${pct(outbox.core)} of a core, ${fix(outbox.msPerEvent, 3)} ms per event`,
        };
      },
    },
  ],
};

async function steady(bench: Bench, start: Promise<Topology>, profile?: string): Promise<EndToEndRun> {
  await emptyTables(bench.databaseUrl);
  const { latencyRate: rate, latencySeconds: seconds } = bench.sizes;
  return withTopology(start, async (topology) => {
    await warmUp(bench, topology);
    bench.progress(`${topology.name}: ${rate} events/s for ${seconds} s`);
    return measureEndToEnd(
      bench,
      topology,
      { shape: 'open', rate, events: rate * seconds },
      { record: true, relay: true, ...(profile ? { profile } : {}) },
    );
  });
}
