import 'reflect-metadata';
import { handled } from '../bench.app.js';
import { liveHeapMB, now, sleep } from '../harness.js';
import { Profiler } from '../profile.js';
import { callCounts, installCallCounter } from './call-counter.js';
import { startCeilingNode } from './ceiling-node.js';
import { handledLog, send } from './handled-log.js';
import { startNaiveApiNode } from './naive-api-node.js';
import { startNaiveWorkerNode } from './naive-worker-node.js';
import type { NodeRole } from './node-role.js';
import { startOutboxNode } from './outbox-node.js';
import type { Commands, NodeConfig, ToNode } from './protocol.js';

/**
 * Entry of a bench node process (forked by node-process.ts with its NodeConfig in the
 * environment): boots its role, says `ready`, then answers the phase's calls until `close`.
 */

function boot(config: NodeConfig): Promise<NodeRole> {
  const { spec } = config;
  switch (spec.kind) {
    case 'outbox':
      return startOutboxNode(config, spec);
    case 'naive-api':
      return startNaiveApiNode(config, spec);
    case 'naive-worker':
      return startNaiveWorkerNode(config, spec);
    case 'ceiling':
      return startCeilingNode(config, spec);
  }
}

async function main(): Promise<void> {
  const config = JSON.parse(process.env.NEST_OUTBOX_BENCH_NODE!) as NodeConfig;
  // The phase holds the IPC channel; if it dies, this process must not outlive it. After `close`
  // the process must end by itself (a leaked connection would keep it alive: the phase reports that).
  let closing = false;
  process.on('disconnect', () => closing || process.exit(1));
  installCallCounter();
  handled.started = (event, at) => handledLog.started(event.aggregateId, at);
  handled.committed = (at) => handledLog.committed(at);
  const role = await boot(config);
  const profiler = new Profiler();

  const commands: { [C in keyof Commands]: (args: Commands[C]['args']) => Promise<Commands[C]['result']> } = {
    async write({ load, record }) {
      if (!role.write) throw new Error(`${config.label} does not write`);
      return role.write(load, record);
    },
    async track({ recordStarts }) {
      handledLog.track(recordStarts);
    },
    async handled({ starts }) {
      return handledLog.report(starts);
    },
    async relayDispatched({ atLeast }) {
      const read = role.relayDispatched;
      if (!read) throw new Error(`${config.label} runs no relay`);
      while (read() < atLeast) await sleep(5);
      return { count: read(), at: now() };
    },
    async start() {
      role.start?.();
    },
    async calls() {
      return callCounts();
    },
    async heap() {
      return liveHeapMB();
    },
    async profileStart({ samplingIntervalUs }) {
      await profiler.start(samplingIntervalUs);
    },
    async profileStop({ file }) {
      await profiler.stop(file);
    },
    async close() {
      closing = true;
      handledLog.stop();
      await role.close();
      // The reply goes out before the channel closes; then nothing may keep the process alive.
      setImmediate(() => process.disconnect());
      setTimeout(() => {
        console.error(
          `[${config.label}] still running after close; open: ${process.getActiveResourcesInfo().join(', ')}`,
        );
      }, 3000).unref();
    },
  };

  process.on('message', (message: ToNode) => {
    const run = commands[message.command] as (args: unknown) => Promise<unknown>;
    run(message.args).then(
      (value) => send({ type: 'reply', id: message.id, value }),
      (error: unknown) =>
        send({
          type: 'reply',
          id: message.id,
          error: error instanceof Error ? (error.stack ?? error.message) : String(error),
        }),
    );
  });
  send({ type: 'ready', bootedAt: role.bootedAt, liveHeapMB: role.liveHeapMB });
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? (error.stack ?? error.message) : String(error));
  process.exit(1);
});
