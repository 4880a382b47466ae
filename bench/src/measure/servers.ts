import { Redis } from 'ioredis';
import { withConnection } from '../../../test/support/database.js';
import { readStat } from './proc.js';

export interface ServerPids {
  /** The PostgreSQL postmaster: parent of every backend and background worker of the server. */
  postmasterPid: number;
  redisPid: number;
}

/**
 * Which processes serve this run, asked of the servers themselves rather than guessed from
 * process names: other PostgreSQL clusters and redis-servers (the fault suite starts private
 * ones) may run on the same machine.
 */
export async function serverPids(databaseUrl: string, redisUrl: string): Promise<ServerPids> {
  const postmasterPid = await withConnection(databaseUrl, async (execute) => {
    const [row] = await execute('select pg_backend_pid() as pid');
    // Read while the backend is still alive: its parent is the postmaster.
    return readStat(Number(row.pid))?.ppid ?? 0;
  });
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1, lazyConnect: true });
  try {
    await redis.connect();
    const info = await redis.info('server');
    const redisPid = Number(/^process_id:(\d+)/m.exec(info)?.[1] ?? 0);
    return { postmasterPid, redisPid };
  } finally {
    redis.disconnect();
  }
}
