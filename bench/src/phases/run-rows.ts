import { describeCalls, type Calls } from '../measure/calls.js';
import type { CpuReport } from '../measure/cpu.js';
import type { EndToEndRun } from '../measure/end-to-end.js';
import { BURST_GAP_MS, type LatencySegments } from '../measure/latency-segments.js';
import { fix, int, ms, pct, type Row } from './phase.js';

/** "CPU per event: api 0.61 ms (12 %), outbox 0.80 ms (16 %), postgres ..." as table lines. */
export function cpuRows(cpu: CpuReport, unit = 'event'): Row[] {
  const parts = Object.entries(cpu.byProcess).map(([role, p]) => `${role} ${fix(p.msPerEvent, 3)} (${pct(p.core)})`);
  return [
    { measure: `  CPU ms per ${unit} by process (share of one core)`, value: parts.join(', ') },
    {
      measure: `  CPU ms per ${unit}, all processes; machine busy; everything else`,
      value:
        `${fix(cpu.total.msPerEvent, 3)}; ${pct(cpu.machineBusy)} of all cores; others ${fix(cpu.othersCores)} cores` +
        (cpu.postgresOtherDatabasesMs > 0
          ? ` (other databases' backends: ${Math.round(cpu.postgresOtherDatabasesMs)} ms)`
          : ''),
    },
  ];
}

/** One line per process: statements and Redis commands it sent per event. */
export function callRows(calls: Calls, unit = 'event'): Row[] {
  return Object.entries(calls).map(([role, kinds]) => ({
    measure: `  ${role}: calls per ${unit}`,
    value: describeCalls(kinds),
  }));
}

/**
 * The lines every end-to-end run prints: rate, latency if recorded, relay batching, CPU and Redis
 * per event. `targets` names the targets its rate line and its p99 line answer.
 */
export function runRows(run: EndToEndRun, targets: { rate?: string; p99?: string } = {}): Row[] {
  const rows: Row[] = [];
  if (run.load.shape === 'closed') {
    rows.push({
      measure: `${run.topology}: ${run.load.writers} writers, ${int(run.events)} events, commit → last handler`,
      value: `${int(run.eventsPerSecond)} events/s`,
      target: targets.rate,
    });
    rows.push({ measure: '  writers committed at', value: `${int(run.committedPerSecond)} events/s` });
  } else {
    const l = run.latency;
    rows.push({
      measure: `${run.topology}: ${run.load.rate} events/s open loop, ${int(run.events)} events (committed at ${int(run.committedPerSecond)}/s)`,
      value: l ? `p50 ${ms(l.p50)}, p95 ${ms(l.p95)}` : '',
    });
    if (l)
      rows.push({
        measure: '  commit → handler start p99 / p99.9 / max',
        value: `${ms(l.p99)} / ${ms(l.p999)} / ${ms(l.max)}`,
        target: targets.p99,
      });
    if (run.segments) rows.push(...segmentRows(run.segments));
    if (run.startLag)
      rows.push({ measure: '  schedule lag of commit starts p99 (load generator)', value: ms(run.startLag.p99, 2) });
  }
  rows.push({
    measure: '  flush (begin + inserts + commit) p50 / p99',
    value: `${ms(run.flush.p50, 2)} / ${ms(run.flush.p99, 2)}`,
  });
  rows.push({ measure: '  PostgreSQL WAL flushes per event (server-wide)', value: fix(run.walFlushesPerEvent, 2) });
  if (run.relay)
    rows.push({
      measure: '  relay batches (rows per batch)',
      value: `${int(run.relay.batches)} (${fix(run.relay.rowsPerBatch, 1)})`,
    });
  if (Object.keys(run.handledBy).length > 1)
    rows.push({
      measure: '  handled by',
      value: Object.entries(run.handledBy)
        .map(([k, v]) => `${k} ${int(v)}`)
        .join(', '),
    });
  return [...rows, ...cpuRows(run.cpu), ...callRows(run.calls)];
}

/** Where commit → handler start went (p50 / p99 of each part), and whether its tail came in bursts. */
function segmentRows(s: LatencySegments): Row[] {
  const part = (d: LatencySegments['enqueued']) => `${fix(d.p50, 0)} / ${fix(d.p99, 0)}`;
  return [
    {
      measure: '  of which, p50 / p99 ms: commit → job added, → taken, → handler start',
      value: `${part(s.enqueued)}, ${part(s.taken)}, ${part(s.started)}`,
    },
    {
      measure: `  the slowest 1 % (${int(s.tailEvents)} events): in bursts`,
      value: `${s.tailBursts} (commits less than ${BURST_GAP_MS} ms apart)`,
    },
  ];
}
