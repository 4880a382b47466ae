import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { signal, within, type Bench } from '../harness.js';
import { memoryOf, type Memory } from '../measure/proc.js';
import type { Command, Commands, FromNode, NodeConfig, NodeSpec, ToNode } from './protocol.js';

const MAIN = fileURLToPath(new URL('./node-main.js', import.meta.url));

/**
 * Node processes that had to be killed because something kept them alive after closing: not fatal
 * (the figures were taken before), but reported with the phase (a leak in what the node ran).
 */
export const nodeWarnings: string[] = [];
const BOOT_MS = 60_000;
const EXIT_MS = 10_000;

/**
 * The phase's handle on one bench node process: start it, call its commands, follow how many
 * messages it handled, read its memory from /proc, close it. Each node is a separate OS process
 * so its CPU and memory are its own, as in a deployment.
 */
export class BenchNode {
  readonly pid: number;
  readonly bootedAt: number;
  readonly liveHeapAtBootMB: number;
  /** Handler transactions committed since the last `track`, as last reported (at most 100 ms old). */
  handled = { count: 0, lastAt: 0 };
  private nextId = 0;
  private readonly calls = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  private readonly progressListeners = new Set<() => void>();
  private exited = false;

  private constructor(
    readonly label: string,
    private readonly child: ChildProcess,
    ready: Extract<FromNode, { type: 'ready' }>,
  ) {
    this.pid = child.pid!;
    this.bootedAt = ready.bootedAt;
    this.liveHeapAtBootMB = ready.liveHeapMB;
    child.on('message', (message: FromNode) => this.receive(message));
    child.on('exit', (code, sig) => {
      this.exited = true;
      const error = new Error(`${label} exited (${sig ?? `code ${code}`})`);
      for (const call of this.calls.values()) call.reject(error);
      this.calls.clear();
    });
  }

  /** Forks a node and waits until it booted. `execArgv` adds Node flags (say, --max-semi-space-size). */
  static async start(config: NodeConfig, execArgv: string[] = []): Promise<BenchNode> {
    const child = fork(MAIN, [], {
      env: { ...process.env, NEST_OUTBOX_BENCH_NODE: JSON.stringify(config) },
      execArgv: ['--expose-gc', ...execArgv],
      stdio: 'inherit',
    });
    const ready = signal<Extract<FromNode, { type: 'ready' }>>();
    const onMessage = (message: FromNode) => message.type === 'ready' && ready.resolve(message);
    child.on('message', onMessage);
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code, sig) =>
        reject(new Error(`${config.label} exited while booting (${sig ?? `code ${code}`})`)),
      ),
    );
    try {
      const message = await within(Promise.race([ready.promise, exited]), BOOT_MS, `${config.label} to boot`);
      return new BenchNode(config.label, child, message);
    } catch (error) {
      child.kill('SIGKILL');
      throw error;
    } finally {
      child.off('message', onMessage);
      exited.catch(() => undefined);
    }
  }

  call<C extends Command>(
    command: C,
    ...args: Commands[C]['args'] extends void ? [] : [Commands[C]['args']]
  ): Promise<Commands[C]['result']> {
    if (this.exited) return Promise.reject(new Error(`${this.label} is not running`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.calls.set(id, { resolve: resolve as (v: unknown) => void, reject });
      this.child.send({ type: 'call', id, command, args: args[0] } satisfies ToNode);
    });
  }

  /** Resets the handled count here and in the node. */
  async track(recordStarts: boolean): Promise<void> {
    await this.call('track', { recordStarts });
    this.handled = { count: 0, lastAt: 0 };
  }

  memory(): Memory | undefined {
    return memoryOf(this.pid);
  }

  onProgress(listener: () => void): () => void {
    this.progressListeners.add(listener);
    return () => this.progressListeners.delete(listener);
  }

  /** Asks the node to close everything it opened; it must then exit by itself, or it is killed and that is an error. */
  async close(): Promise<void> {
    if (this.exited) return;
    const exit = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    await within(this.call('close'), EXIT_MS, `${this.label} to close`).catch((error: unknown) => {
      this.child.kill('SIGKILL');
      throw error;
    });
    await within(exit, EXIT_MS, `${this.label} to exit after closing`).catch(() => {
      this.child.kill('SIGKILL');
      nodeWarnings.push(
        `${this.label} process did not exit by itself within ${EXIT_MS / 1000} s after closing (killed)`,
      );
    });
  }

  /** Ends the process now (after a failure elsewhere); never throws. */
  kill(): void {
    if (!this.exited) this.child.kill('SIGKILL');
  }

  private receive(message: FromNode): void {
    if (message.type === 'progress') {
      this.handled = { count: message.count, lastAt: message.lastAt };
      for (const listener of this.progressListeners) listener();
    } else if (message.type === 'reply') {
      const call = this.calls.get(message.id);
      this.calls.delete(message.id);
      if (message.error !== undefined) call?.reject(new Error(`${this.label}: ${message.error}`));
      else call?.resolve(message.value);
    }
  }
}

/**
 * Starts a node of this run: its database (the run's, or `databaseUrl`: a consuming service's own),
 * Redis, BullMQ prefix and Node flags (`--node-args`).
 */
export function startNode(
  bench: Bench,
  label: string,
  spec: NodeSpec,
  databaseUrl = bench.databaseUrl,
): Promise<BenchNode> {
  const config: NodeConfig = {
    label,
    spec,
    databaseUrl,
    redisUrl: bench.redisUrl,
    prefix: bench.prefix,
  };
  return BenchNode.start(config, bench.nodeArgs);
}

/**
 * Resolves when the nodes together have handled `total` messages since their `track`; returns
 * now() of the last handler commit among them (exact: each node stamps its own commits).
 */
export async function allHandled(
  nodes: readonly BenchNode[],
  total: number,
  timeoutMs: number,
  progress?: (count: number) => void,
): Promise<number> {
  const done = signal<number>();
  const check = () => {
    const count = nodes.reduce((sum, node) => sum + node.handled.count, 0);
    progress?.(count);
    if (count >= total) done.resolve(Math.max(...nodes.map((node) => node.handled.lastAt)));
  };
  const stops = nodes.map((node) => node.onProgress(check));
  try {
    check();
    return await within(done.promise, timeoutMs, `${total} messages handled (${nodes.map((n) => n.label).join(', ')})`);
  } finally {
    for (const stop of stops) stop();
  }
}
