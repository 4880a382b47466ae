import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../../test/support/redis.js';

/** A service of the example running as its own OS process, as it would be deployed. */
export class ServiceProcess {
  private constructor(
    readonly name: string,
    private readonly child: ChildProcess,
    /** Where it listens (every example service answers HTTP). */
    readonly url: string,
  ) {}

  /**
   * Starts `dist/apps/<app>/src/main.js` with `env` and resolves once it says where it listens.
   * Its output goes to this process's, each line tagged with `name`.
   */
  static async start(name: string, app: string, env: Record<string, string>): Promise<ServiceProcess> {
    const entry = fileURLToPath(new URL(`../../${app}/src/main.js`, import.meta.url));
    const port = await freePort();
    const child = fork(entry, [], {
      env: { ...process.env, ...env, PORT: String(port) },
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    const url = await new Promise<string>((resolve, reject) => {
      let seen = '';
      const onData = (chunk: Buffer) => {
        const text = chunk.toString();
        seen += text;
        for (const line of text.split('\n').filter(Boolean))
          if (!/ on http/.test(line)) process.stderr.write(`[${name}] ${line}\n`);
        const match = / on (http:\/\/[^ ]+)/.exec(seen);
        if (match) resolve(match[1]);
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', (chunk: Buffer) => process.stderr.write(`[${name}] ${chunk.toString()}`));
      child.once('exit', (code) => reject(new Error(`${name} exited with code ${code} before it was ready:\n${seen}`)));
    });
    return new ServiceProcess(name, child, url);
  }

  /** SIGTERM, as a deployment stops it: the outbox finishes its batch and handlers first. */
  async stop(): Promise<void> {
    if (this.child.exitCode !== null) return;
    const exited = new Promise((resolve) => this.child.once('exit', resolve));
    this.child.kill('SIGTERM');
    await exited;
  }
}
