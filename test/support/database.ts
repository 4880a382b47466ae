import { MikroORM } from '@mikro-orm/postgresql';

const ADMIN_URL = process.env.DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/** URL of `name` on the same server as DATABASE_URL. */
export function databaseUrl(name: string, base = ADMIN_URL): string {
  const url = new URL(base);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Runs SQL against a database with a throwaway ORM (no entities). */
export async function withConnection<T>(
  url: string,
  fn: (execute: (sql: string, params?: unknown[]) => Promise<any[]>) => Promise<T>,
): Promise<T> {
  const orm = await MikroORM.init({
    clientUrl: url,
    entities: [],
    discovery: { warnWhenNoEntities: false },
    pool: { min: 0, max: 2 },
  });
  try {
    const connection = orm.em.getConnection();
    return await fn((sql, params = []) => connection.execute(sql, params));
  } finally {
    await orm.close(true);
  }
}

/** A new, empty database for one suite: whatever an earlier run left is dropped first. */
export async function freshDatabase(name: string, adminUrl = ADMIN_URL): Promise<string> {
  // TEST_DB_PREFIX keeps two checkouts that run the suites at once on one server out of each other's databases.
  const database = `${process.env.TEST_DB_PREFIX ?? 'nest_outbox_t'}_${name}`.toLowerCase().replace(/[^a-z0-9_]/g, '_');
  await withConnection(adminUrl, async (execute) => {
    await execute(`drop database if exists "${database}" with (force)`);
    await execute(`create database "${database}"`);
  });
  return databaseUrl(database, adminUrl);
}
