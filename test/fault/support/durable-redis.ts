import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../support/redis.js';

/**
 * A throwaway redis-server on a free loopback port that keeps its data across a crash: AOF with
 * `appendfsync always` in a temp dir, as BullMQ wants Redis run in production. `crash()` SIGKILLs
 * it; `start()` brings it back on the same port with every acknowledged write.
 * (test/support/redis.ts's PrivateRedis keeps nothing, so a restart there empties the queue.)
 */
export class DurableRedis {
  private process: ChildProcess | undefined;
  private output = '';

  private constructor(
    readonly port: number,
    readonly dir: string,
  ) {}

  static async start(): Promise<DurableRedis> {
    const redis = new DurableRedis(await freePort(), mkdtempSync(join(tmpdir(), 'nest-outbox-redis-')));
    await redis.start();
    return redis;
  }

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  get isRunning(): boolean {
    return this.process !== undefined && this.process.exitCode === null && this.process.signalCode === null;
  }

  async start(): Promise<void> {
    const args = [
      '--port',
      String(this.port),
      '--bind',
      '127.0.0.1',
      '--dir',
      this.dir,
      '--save',
      '',
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--maxmemory-policy',
      'noeviction',
    ];
    const child = spawn('redis-server', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    this.process = child;
    this.output = '';
    await new Promise<void>((resolve, reject) => {
      child.stdout!.on('data', (chunk: Buffer) => {
        this.output = (this.output + chunk.toString()).slice(-20_000);
        if (/Ready to accept connections/.test(this.output)) resolve();
      });
      child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}: ${this.output}`)));
    });
  }

  /** SIGKILL: the server dies without a shutdown; the AOF keeps what it acknowledged. */
  async crash(): Promise<void> {
    const child = this.process;
    if (!child || !this.isRunning) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGKILL');
    await exited;
    this.process = undefined;
  }

  async destroy(): Promise<void> {
    try {
      await this.crash();
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }
}
