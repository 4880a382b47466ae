import pg, { type Pool } from 'pg';

/**
 * PostgreSQL's WAL flushes over a window (`pg_stat_wal.wal_sync`): each is a wait for the disk that
 * some commit paid. Server-wide, and a backend reports its count at most once a second, so a window
 * of many seconds reads it to within a second's worth of activity.
 */
export class WalFlushCounter {
  private readonly pool: Pool;

  constructor(databaseUrl: string) {
    this.pool = new pg.Pool({ connectionString: databaseUrl, max: 1 });
  }

  async read(): Promise<number> {
    const [{ syncs }] = (await this.pool.query<{ syncs: string }>('select wal_sync as syncs from pg_stat_wal')).rows;
    return Number(syncs);
  }

  close(): Promise<void> {
    return this.pool.end();
  }
}
