import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { Redis } from 'ioredis';
import { waitUntil } from './wait.js';

const run = promisify(execFile);

/** Redis Cluster nodes talk to each other on their port + 10000 (the cluster bus). */
const BUS_OFFSET = 10_000;

/**
 * A throwaway Redis Cluster of `masters` masters and no replicas on loopback, in a temp dir:
 * `redis-server --cluster-enabled yes` per node, joined by `redis-cli --cluster create`. Never
 * touches the machine's shared Redis. `stop()` kills the nodes and removes their files.
 */
export class PrivateRedisCluster {
  private readonly processes: ChildProcess[] = [];

  private constructor(
    readonly ports: number[],
    readonly dir: string,
  ) {}

  static async start(masters = 3): Promise<PrivateRedisCluster> {
    const ports: number[] = [];
    while (ports.length < masters) {
      const port = await freeClusterPort();
      if (!ports.includes(port)) ports.push(port);
    }
    const cluster = new PrivateRedisCluster(ports, mkdtempSync(join(tmpdir(), 'nest-outbox-redis-cluster-')));
    try {
      await Promise.all(ports.map((port) => cluster.startNode(port)));
      const addresses = ports.map((port) => `127.0.0.1:${port}`);
      await run('redis-cli', ['--cluster', 'create', ...addresses, '--cluster-replicas', '0', '--cluster-yes'], {
        timeout: 60_000,
      });
      await cluster.waitUntilOk();
    } catch (error) {
      await cluster.stop();
      throw error;
    }
    return cluster;
  }

  /** Seed nodes, as `redis: { cluster: … }` takes them. */
  get nodes(): Array<{ host: string; port: number }> {
    return this.ports.map((port) => ({ host: '127.0.0.1', port }));
  }

  /** A plain client on one node (no redirections): for CLUSTER commands. */
  node(port = this.ports[0]): Redis {
    return new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 1, lazyConnect: false });
  }

  async stop(): Promise<void> {
    await Promise.all(
      this.processes.splice(0).map(async (child) => {
        if (child.exitCode !== null || child.signalCode !== null) return;
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGKILL');
        await exited;
      }),
    );
    rmSync(this.dir, { recursive: true, force: true });
  }

  private async startNode(port: number): Promise<void> {
    const child = spawn(
      'redis-server',
      [
        '--port',
        String(port),
        '--bind',
        '127.0.0.1',
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        `nodes-${port}.conf`,
        '--dir',
        this.dir,
        '--save',
        '',
        '--appendonly',
        'no',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.processes.push(child);
    await new Promise<void>((resolve, reject) => {
      let output = '';
      child.stdout!.on('data', (chunk: Buffer) => {
        output += chunk.toString();
        if (output.includes('Ready to accept connections')) resolve();
      });
      child.once('exit', (code) => reject(new Error(`redis-server on ${port} exited with ${code}: ${output}`)));
    });
  }

  /** Every node says `cluster_state:ok`: all 16384 slots are served and the nodes agree on it. */
  private async waitUntilOk(): Promise<void> {
    const clients = this.ports.map((port) => this.node(port));
    try {
      await waitUntil(
        'cluster_state:ok on every node',
        async () => {
          const infos = await Promise.all(clients.map((client) => client.cluster('INFO')));
          return infos.every((info) => String(info).includes('cluster_state:ok'));
        },
        30_000,
        100,
      );
    } finally {
      for (const client of clients) client.disconnect();
    }
  }
}

/** A port P such that P and its cluster bus port P + 10000 are both free (so P stays below 55536). */
async function freeClusterPort(): Promise<number> {
  for (let tries = 0; tries < 100; tries++) {
    const port = 20_000 + Math.floor(Math.random() * 20_000);
    if ((await canListen(port)) && (await canListen(port + BUS_OFFSET))) return port;
  }
  throw new Error('No free port pair (P, P + 10000) for a Redis Cluster node.');
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = net.createServer();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}
