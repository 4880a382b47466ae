import { execFile } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './redis.js';

const run = promisify(execFile);

/** How `stop` ends the server: `fast` rolls back sessions and checkpoints; `immediate` is a crash (recovery on the next start). */
export type StopMode = 'fast' | 'immediate';

/**
 * A throwaway PostgreSQL cluster (initdb + pg_ctl) in a temp dir on a free loopback port, which a
 * test may stop, crash and start again. Never touches the machine's shared server. Running as
 * root, the cluster belongs to the `postgres` OS user (PostgreSQL refuses to run as root).
 */
export class PrivatePostgres {
  private running = false;

  private constructor(
    readonly port: number,
    readonly dir: string,
    private readonly bin: string,
    /** `-c name=value` settings after the defaults (which they override), on every start. */
    private readonly settings: readonly string[] = [],
  ) {}

  /** initdb (trust auth, fsync off, synchronous commits, 127.0.0.1 only) and start. */
  static async start(options: { maxConnections?: number; settings?: string[] } = {}): Promise<PrivatePostgres> {
    const bin = postgresBin();
    const dir = mkdtempSync(join(tmpdir(), 'nest-outbox-pg-'));
    const server = new PrivatePostgres(await freePort(), dir, bin, options.settings);
    try {
      if (isRoot()) {
        const { uid, gid } = postgresUser();
        chownSync(dir, uid, gid);
      }
      await server.asServerUser(join(bin, 'initdb'), [
        '-D',
        server.dataDir,
        '-U',
        'postgres',
        '-A',
        'trust',
        '-E',
        'UTF8',
        '--no-sync',
        '--no-instructions',
      ]);
      await server.start(options.maxConnections ?? 300);
    } catch (error) {
      await server.destroy().catch(() => undefined);
      throw error;
    }
    return server;
  }

  get dataDir(): string {
    return join(this.dir, 'data');
  }

  get logFile(): string {
    return join(this.dir, 'server.log');
  }

  /** URL of `database` (default `postgres`) as the `postgres` superuser. */
  url(database = 'postgres'): string {
    return `postgres://postgres@127.0.0.1:${this.port}/${database}`;
  }

  get isRunning(): boolean {
    return this.running;
  }

  /** Starts the cluster (again) on the same port and data directory; resolves when it accepts connections. */
  async start(maxConnections = 300): Promise<void> {
    const settings = [
      `-p ${this.port}`,
      `-c listen_addresses=127.0.0.1`,
      `-c unix_socket_directories=${this.dir}`,
      `-c max_connections=${maxConnections}`,
      // fsync off is safe for what the suite does: a crash of the server *process* keeps the OS
      // page cache. synchronous_commit stays on: off would acknowledge commits that a crash
      // (`stop('immediate')`) then loses, which no outbox can survive.
      '-c fsync=off',
      '-c full_page_writes=off',
      '-c shared_buffers=64MB',
      ...this.settings,
    ].join(' ');
    await this.asServerUser(join(this.bin, 'pg_ctl'), [
      'start',
      '-w',
      '-t',
      '60',
      '-D',
      this.dataDir,
      '-l',
      this.logFile,
      '-o',
      settings,
    ]);
    this.running = true;
  }

  /** Stops the cluster; `immediate` kills it like a crash (committed data survives, open transactions are lost). */
  async stop(mode: StopMode = 'fast'): Promise<void> {
    if (!existsSync(join(this.dataDir, 'postmaster.pid'))) {
      this.running = false;
      return;
    }
    await this.asServerUser(join(this.bin, 'pg_ctl'), ['stop', '-w', '-t', '60', '-D', this.dataDir, '-m', mode]);
    this.running = false;
  }

  async restart(mode: StopMode = 'fast'): Promise<void> {
    await this.stop(mode);
    await this.start();
  }

  /** Last lines of the server log, for failure messages. */
  logTail(lines = 30): string {
    try {
      return readFileSync(this.logFile, 'utf8').split('\n').slice(-lines).join('\n');
    } catch {
      return '';
    }
  }

  /** Stops the cluster (as a crash: it is thrown away) and removes its directory. */
  async destroy(): Promise<void> {
    try {
      await this.stop('immediate');
    } finally {
      rmSync(this.dir, { recursive: true, force: true });
    }
  }

  private async asServerUser(command: string, args: string[]): Promise<void> {
    const [file, argv] = isRoot() ? ['runuser', ['-u', 'postgres', '--', command, ...args]] : [command, args];
    try {
      await run(file, argv, { timeout: 120_000 });
    } catch (error) {
      const { stdout = '', stderr = '' } = error as { stdout?: string; stderr?: string };
      throw new Error(`${command} ${args[0]} failed: ${stderr || stdout || String(error)}\n${this.logTail(10)}`, {
        cause: error,
      });
    }
  }
}

function isRoot(): boolean {
  return process.getuid?.() === 0;
}

/** The newest /usr/lib/postgresql/<version>/bin, or PG_BIN. */
function postgresBin(): string {
  if (process.env.PG_BIN) return process.env.PG_BIN;
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).filter((v) => existsSync(join(root, v, 'bin', 'pg_ctl'))) : [];
  if (versions.length === 0)
    throw new Error('No PostgreSQL server binaries in /usr/lib/postgresql/*/bin; install postgresql or set PG_BIN.');
  versions.sort((a, b) => Number(a) - Number(b));
  return join(root, versions[versions.length - 1], 'bin');
}

function postgresUser(): { uid: number; gid: number } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((entry) => entry.startsWith('postgres:'));
  if (!line) throw new Error('Running as root needs a `postgres` OS user to own the private cluster.');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}
