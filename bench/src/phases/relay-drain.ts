import { measureDrain, type DrainRun } from '../measure/drain.js';
import { RELAY_ONLY } from '../outbox-options.js';
import type { RawBullmqResult } from './raw-bullmq.js';
import { fix, int, resultOf, type PhaseDefinition } from './phase.js';
import { callRows, cpuRows } from './run-rows.js';

/** Flat: the live heap after GC ends the drain at most this many MB above where it began. */
export const LIVE_HEAP_FLAT_MB = 10;

/**
 * A backlog drained by the relay alone (worker off): how fast rows reach BullMQ, against addBulk
 * alone, and whether the relay's memory stays flat however long the backlog.
 */
export const relayDrain: PhaseDefinition<DrainRun> = {
  name: 'relayDrain',
  title: 'backlog drain, relay alone',
  run: (bench) => measureDrain(bench, RELAY_ONLY, bench.sizes.backlogRows, 'dispatched'),
  rows: (e) => [
    {
      measure: `${int(e.rows)} pending rows (written in ${fix(e.writeSeconds, 1)} s) → BullMQ, worker off`,
      value: `${int(e.perSecond)} rows/s`,
      target: 'relay.vs-addbulk',
    },
    { measure: '  peak RSS of the relay process', value: `${int(e.peakRssMB)} MB` },
    {
      measure: '  live heap after GC, at boot → after the drain',
      value: `${fix(e.liveHeapAtBootMB, 1)} → ${fix(e.liveHeapAfterMB, 1)} MB`,
      target: 'relay.flat',
    },
    ...cpuRows(e.cpu, 'row'),
    ...callRows(e.calls, 'row'),
  ],
  targets: [
    {
      id: 'relay.vs-addbulk',
      label: 'relay drain / BullMQ addBulk alone',
      goal: { op: '≥', value: 0.8 },
      evaluate(all) {
        const e = resultOf<DrainRun>(all, 'relayDrain');
        const a = resultOf<RawBullmqResult>(all, 'rawBullmq');
        if (!e || !a) return { value: null, detail: 'n/a' };
        const ratio = e.perSecond / a.addBulkPerSecond;
        return { value: ratio, detail: `${int(e.perSecond)} / ${int(a.addBulkPerSecond)} rows/s = ${fix(ratio)}` };
      },
    },
    {
      id: 'relay.flat',
      label: 'relay drain: live heap growth (MB)',
      goal: { op: '≤', value: LIVE_HEAP_FLAT_MB },
      evaluate(all) {
        const e = resultOf<DrainRun>(all, 'relayDrain');
        if (!e) return { value: null, detail: 'n/a' };
        return { value: e.liveHeapGrowthMB, detail: `${fix(e.liveHeapAtBootMB, 1)} → ${fix(e.liveHeapAfterMB, 1)} MB` };
      },
    },
  ],
};
