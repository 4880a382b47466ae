import type { EndToEndRun } from '../measure/end-to-end.js';
import { betweenServices } from '../nodes/topology.js';
import { fullSpeed } from './full-speed.js';
import { fix, fromResult, int, type PhaseDefinition } from './phase.js';
import { runRows } from './run-rows.js';

/** Consuming services of the fan-out run. */
const FAN_OUT = 3;

export interface FanOutResult {
  /** One producer service → 1 consuming service. */
  single: EndToEndRun;
  /** The same workload → FAN_OUT consuming services, each its own queue and database. */
  fanOut: EndToEndRun;
  services: number;
  /** CPU of the producer's relay process per event: fan-out / single. */
  relayCpuRatio: number;
  /** End-to-end events/s (commit → last handler of every service): fan-out / single. */
  rateRatio: number;
  /** `--profile`: the fan-out run again under the V8 profiler in every process. */
  profiled?: EndToEndRun;
}

const relayMs = (run: EndToEndRun) => run.cpu.byProcess.relay?.msPerEvent ?? NaN;

/**
 * Fan-out between services: a producer service (API process + relay process, no handlers of its
 * own) whose relay delivers each message to the queue of every subscribed service, with 1 then 3
 * consuming services (each a worker process with its own service name and database), back to back
 * so both share the machine's state. What the relay spends per event as consumers are added.
 */
export const fanOut: PhaseDefinition<FanOutResult> = {
  name: 'fanOut',
  title: `fan-out: 1 producer → 1 and ${FAN_OUT} consuming services`,
  async run(bench) {
    const single = await fullSpeed(bench, () => betweenServices(bench, 1));
    const fanOut = await fullSpeed(bench, () => betweenServices(bench, FAN_OUT));
    const result: FanOutResult = {
      single,
      fanOut,
      services: FAN_OUT,
      relayCpuRatio: relayMs(fanOut) / relayMs(single),
      rateRatio: fanOut.eventsPerSecond / single.eventsPerSecond,
    };
    if (bench.profile)
      result.profiled = await fullSpeed(bench, () => betweenServices(bench, FAN_OUT), { profile: 'fan-out' });
    return result;
  },
  rows: (r) => [
    ...runRows(r.single),
    ...runRows(r.fanOut),
    {
      measure: `relay process CPU ms per event, ${r.services} services / 1`,
      value: `${fix(relayMs(r.fanOut), 3)} / ${fix(relayMs(r.single), 3)} = ×${fix(r.relayCpuRatio)}`,
      target: 'fanout.relay-cpu',
    },
    {
      measure: `events/s (commit → last handler of every service), ${r.services} services / 1`,
      value: `${int(r.fanOut.eventsPerSecond)} / ${int(r.single.eventsPerSecond)} = ×${fix(r.rateRatio)}`,
    },
  ],
  targets: [
    {
      id: 'fanout.relay-cpu',
      label: `relay CPU per event, fan-out to ${FAN_OUT} services / to 1`,
      goal: { op: '≤', value: 1.5 },
      evaluate: fromResult<FanOutResult>('fanOut', (r) => ({
        value: r.relayCpuRatio,
        detail: `${fix(relayMs(r.fanOut), 3)} / ${fix(relayMs(r.single), 3)} ms per event; events/s ×${fix(r.rateRatio)}`,
      })),
    },
  ],
};
