import { MikroORM } from '@mikro-orm/postgresql';

/** What one service's own database says it wrote, handled and did. */
export interface ServiceFigures {
  /** Messages written, by type, with the services each type was delivered to. */
  written: Array<{ type: string; count: number; routedTo: string }>;
  /** Handler runs recorded in the inbox, by handler: one per message at most, by its primary key. */
  handled: Array<{ handler: string; count: number }>;
  /** Rows no service subscribed to. */
  unrouted: number;
  /** The service's own effects, by name. */
  effects: Record<string, number>;
}

/** Reads a service's figures from its database. */
export function readFigures(databaseUrl: string, effectsSql: string): Promise<ServiceFigures> {
  return withDatabase(databaseUrl, async (sql) => {
    const written =
      await sql(`select type, count(*)::int as count, coalesce(array_to_string(routed_to, ', '), '-') as "routedTo"
      from outbox_message group by type, routed_to order by type`);
    const handled = await sql(
      'select handler, count(*)::int as count from inbox_message group by handler order by handler',
    );
    const [{ unrouted }] = await sql(`select count(*)::int as unrouted from outbox_message where routed_to = '{}'`);
    const [effects] = await sql(effectsSql);
    return {
      written: written as ServiceFigures['written'],
      handled: handled as ServiceFigures['handled'],
      unrouted: Number(unrouted),
      effects: effects as Record<string, number>,
    };
  });
}

/** Empties a service's tables (a demo starts from nothing each time). */
export async function emptyTables(databaseUrl: string, tables: string[]): Promise<void> {
  await withDatabase(databaseUrl, (sql) => sql(`truncate ${tables.map((table) => `"${table}"`).join(', ')}`));
}

/** Runs `fn` with SQL on a throwaway connection to `databaseUrl`. */
async function withDatabase<T>(
  databaseUrl: string,
  fn: (sql: (text: string) => Promise<Array<Record<string, unknown>>>) => Promise<T>,
): Promise<T> {
  const orm = await MikroORM.init({
    clientUrl: databaseUrl,
    entities: [],
    discovery: { warnWhenNoEntities: false },
    pool: { max: 1 },
  });
  try {
    return await fn((text) => orm.em.getConnection().execute<Array<Record<string, unknown>>>(text));
  } finally {
    await orm.close();
  }
}
