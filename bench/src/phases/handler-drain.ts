import { measureDrain, type DrainRun } from '../measure/drain.js';
import { RELAY_AND_WORKER } from '../outbox-options.js';
import type { ConsumeCeilingResult } from './consume-ceiling.js';
import { fix, int, resultOf, type PhaseDefinition } from './phase.js';
import type { RawBullmqResult } from './raw-bullmq.js';
import { callRows, cpuRows } from './run-rows.js';

export const PEAK_RSS_MB = 200;

/**
 * A backlog drained through the handlers: one outbox process (relay + worker) until every
 * handler transaction committed — what recovering from an outage costs — against the consume
 * ceiling, with the process's peak RSS.
 */
export const handlerDrain: PhaseDefinition<DrainRun> = {
  name: 'handlerDrain',
  title: 'backlog drain through the handlers',
  run: (bench) => measureDrain(bench, RELAY_AND_WORKER, bench.sizes.backlogRows, 'handled'),
  rows: (h) => [
    {
      measure: `${int(h.rows)} pending rows → every handler committed, one outbox process`,
      value: `${int(h.perSecond)} events/s`,
      target: 'drain.vs-ceiling',
    },
    { measure: '  peak RSS of the outbox process', value: `${int(h.peakRssMB)} MB`, target: 'drain.rss' },
    {
      measure: '  live heap after GC, at boot → after the drain',
      value: `${fix(h.liveHeapAtBootMB, 1)} → ${fix(h.liveHeapAfterMB, 1)} MB`,
    },
    ...cpuRows(h.cpu),
    ...callRows(h.calls),
  ],
  targets: [
    {
      id: 'drain.vs-ceiling',
      label: 'drain through the handlers / consume ceiling',
      goal: { op: '≥', value: 0.8 },
      evaluate(all) {
        const h = resultOf<DrainRun>(all, 'handlerDrain');
        const ceiling = resultOf<ConsumeCeilingResult>(all, 'consumeCeiling');
        if (!h || !ceiling) return { value: null, detail: 'n/a' };
        const ratio = h.perSecond / ceiling.jobsPerSecond;
        const relay = resultOf<DrainRun>(all, 'relayDrain');
        const raw = resultOf<RawBullmqResult>(all, 'rawBullmq');
        return {
          value: ratio,
          detail:
            `${int(h.perSecond)} / ${int(ceiling.jobsPerSecond)} events/s = ${fix(ratio)}` +
            (relay ? `; relay alone ${int(relay.perSecond)} rows/s` : '') +
            (raw ? `; raw BullMQ ${int(raw.endToEndPerSecond)} jobs/s` : ''),
        };
      },
    },
    {
      id: 'drain.rss',
      label: 'drain through the handlers: peak RSS of the outbox process (MB)',
      goal: { op: '≤', value: PEAK_RSS_MB },
      evaluate(all) {
        const h = resultOf<DrainRun>(all, 'handlerDrain');
        if (!h) return { value: null, detail: 'n/a' };
        return {
          value: h.peakRssMB,
          detail: `${int(h.peakRssMB)} MB (live heap ${fix(h.liveHeapAfterMB, 1)} MB after)`,
        };
      },
    },
  ],
};
