import { spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const ENTRY = join(ROOT, 'dist/test/fault/processes/orders-node.js');
const SOURCE = join(ROOT, 'test/fault/processes/orders-node.ts');

/** A message a process entry sends over IPC (see processes/orders-node.ts). */
export type NodeMessage = Record<string, unknown> & { kind: string };
export type NodeEnv = Record<string, string | number | boolean | undefined>;
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  at: number;
}

/** The compiled entry of a process source under test/ (`test/x/y.ts` → `dist/test/x/y.js`). */
export function entryOf(source: string): string {
  return join(ROOT, 'dist', source.replace(/\.ts$/, '.js'));
}

/**
 * Fails early, with the fix, when the compiled entry is missing or older than its source.
 * `source` (relative to the repo root) names another process entry than the orders example's.
 */
export function assertEntryBuilt(source?: string): void {
  const entry = source ? entryOf(source) : ENTRY;
  const sourcePath = source ? join(ROOT, source) : SOURCE;
  if (!existsSync(entry)) throw new Error(`${entry} is missing: run \`npm run build\` first (npm test does).`);
  if (statSync(entry).mtimeMs < statSync(sourcePath).mtimeMs)
    throw new Error(`${entry} is older than ${sourcePath}: run \`npm run build\`.`);
  const major = Number(process.versions.node.split('.')[0]);
  if (major < 22)
    throw new Error(
      `The fault suite runs on Node ${process.versions.node}; run it through npm/npx so Node 22 from devDependencies is used.`,
    );
}

/** One spawned OS process of the orders example; keeps its IPC messages and the tail of its output. */
export class NodeProcess {
  readonly child: ChildProcess;
  readonly messages: NodeMessage[] = [];
  readonly lines: string[] = [];
  readonly startedAt = Date.now();
  exit: Exit | undefined;
  readonly exited: Promise<Exit>;
  readonly ready: Promise<void>;
  private readonly listeners = new Set<(message: NodeMessage) => void>();

  constructor(
    readonly name: string,
    readonly env: NodeEnv,
    baseEnv: NodeEnv,
    private readonly logFile: string,
    entry = ENTRY,
  ) {
    const childEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1' };
    delete childEnv.NODE_OPTIONS; // jest's --experimental-vm-modules is not for the children
    for (const [key, value] of Object.entries({ ...baseEnv, ...env })) {
      if (value === undefined) delete childEnv[key];
      else childEnv[key] = typeof value === 'boolean' ? (value ? '1' : '0') : String(value);
    }
    this.child = spawn(process.execPath, [entry], { env: childEnv, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] });
    this.log(`--- ${name} pid ${this.child.pid} env ${JSON.stringify(env)}`);
    for (const stream of [this.child.stdout!, this.child.stderr!]) {
      let partial = '';
      stream.on('data', (chunk: Buffer) => {
        const text = partial + chunk.toString();
        const parts = text.split('\n');
        partial = parts.pop() ?? '';
        for (const line of parts) this.log(line);
      });
    }
    this.child.on('message', (message: NodeMessage) => {
      if (message.kind !== 'status' && message.kind !== 'produced' && message.kind !== 'addbulk')
        this.log(`ipc ${JSON.stringify(message).slice(0, 300)}`);
      this.messages.push(message);
      if (this.messages.length > 2000) this.messages.splice(0, 1000);
      for (const listener of this.listeners) listener(message);
    });
    this.exited = new Promise((resolveExit) => {
      this.child.once('exit', (code, signal) => {
        this.exit = { code, signal, at: Date.now() };
        this.log(`--- exit code ${code} signal ${signal}`);
        resolveExit(this.exit);
      });
    });
    this.ready = this.waitFor('ready', () => true, 60_000).then(() => undefined);
    this.ready.catch(() => undefined);
  }

  get pid(): number {
    return this.child.pid!;
  }

  get alive(): boolean {
    return this.exit === undefined;
  }

  signal(signal: NodeJS.Signals): void {
    if (this.alive) this.child.kill(signal);
  }

  /** The latest message of a kind (e.g. `status`), if any. */
  last(kind: string): NodeMessage | undefined {
    for (let i = this.messages.length - 1; i >= 0; i--) if (this.messages[i].kind === kind) return this.messages[i];
    return undefined;
  }

  /** Resolves with the first message of `kind` (already received or coming) that matches; rejects if the process exits first. */
  waitFor(
    kind: string,
    match: (message: NodeMessage) => boolean = () => true,
    timeoutMs = 60_000,
  ): Promise<NodeMessage> {
    const seen = this.messages.find((message) => message.kind === kind && match(message));
    if (seen) return Promise.resolve(seen);
    return new Promise((resolveMessage, reject) => {
      const timer = setTimeout(
        () => done(new Error(`${this.name}: no "${kind}" message within ${timeoutMs} ms\n${this.tail()}`)),
        timeoutMs,
      );
      const listener = (message: NodeMessage) => {
        if (message.kind === kind && match(message)) done(undefined, message);
      };
      const done = (error?: Error, message?: NodeMessage) => {
        clearTimeout(timer);
        this.listeners.delete(listener);
        if (error) reject(error);
        else resolveMessage(message!);
      };
      this.listeners.add(listener);
      void this.exited.then((exit) =>
        done(
          new Error(
            `${this.name} exited (code ${exit.code}, signal ${exit.signal}) before a "${kind}" message\n${this.tail()}`,
          ),
        ),
      );
    });
  }

  /** Whether the kernel has the process stopped (SIGSTOP), from /proc. */
  isStopped(): boolean {
    try {
      const stat = readFileSync(`/proc/${this.pid}/stat`, 'utf8');
      return /^\d+ \(.*\) [Tt] /.test(stat);
    } catch {
      return false;
    }
  }

  tail(lines = 25): string {
    return this.lines
      .slice(-lines)
      .map((line) => `  [${this.name}] ${line}`)
      .join('\n');
  }

  private log(line: string): void {
    this.lines.push(line);
    if (this.lines.length > 400) this.lines.splice(0, 200);
    appendFileSync(this.logFile, `${line}\n`);
  }
}

/** The processes of one scenario, all on the same database, Redis and queue. */
export class Cluster {
  readonly processes: NodeProcess[] = [];

  constructor(
    private readonly baseEnv: NodeEnv,
    private readonly logDir: string,
    private readonly scenario: string,
    /** The compiled process entry to spawn (see entryOf); the orders example's by default. */
    private readonly entry = ENTRY,
  ) {
    mkdirSync(logDir, { recursive: true });
  }

  spawn(name: string, env: NodeEnv = {}): NodeProcess {
    const node = new NodeProcess(name, env, this.baseEnv, join(this.logDir, `${this.scenario}.log`), this.entry);
    this.processes.push(node);
    return node;
  }

  alive(): NodeProcess[] {
    return this.processes.filter((node) => node.alive);
  }

  /** Lines of every process's output that look like trouble, for failure messages and the report. */
  errorLines(limit = 40): string[] {
    const pattern = /error|warn|exception|unhandled|dead letter|stalled/i;
    return this.processes
      .flatMap((node) => node.lines.filter((line) => pattern.test(line)).map((line) => `[${node.name}] ${line}`))
      .slice(-limit);
  }

  tails(lines = 15): string {
    return this.processes.map((node) => node.tail(lines)).join('\n');
  }

  /** SIGKILLs every process still running (a stopped one too) and waits for their exits. */
  async killAll(): Promise<void> {
    const running = this.alive();
    for (const node of running) {
      node.signal('SIGKILL');
    }
    await Promise.all(running.map((node) => node.exited));
  }

  /** SIGTERMs every process, waits up to `timeoutMs` for graceful exits, then SIGKILLs the rest. */
  async stopAll(timeoutMs = 20_000): Promise<void> {
    const running = this.alive();
    for (const node of running) {
      node.signal('SIGCONT');
      node.signal('SIGTERM');
    }
    await Promise.race([Promise.all(running.map((node) => node.exited)), new Promise((r) => setTimeout(r, timeoutMs))]);
    await this.killAll();
  }
}
