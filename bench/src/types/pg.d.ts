/**
 * The few `pg` types the bench uses (the consume ceiling's pool, the call counter's hook). `pg` ships no types and @types/pg is not a
 * dependency; `pg` itself is installed as @mikro-orm/postgresql's driver.
 */
declare module 'pg' {
  export interface QueryResult<R = Record<string, unknown>> {
    rows: R[];
    rowCount: number | null;
  }
  export interface PoolClient {
    query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<QueryResult<R>>;
    release(error?: Error | boolean): void;
  }
  export interface PoolConfig {
    connectionString?: string;
    max?: number;
    [option: string]: unknown;
  }
  export class Pool {
    constructor(config?: PoolConfig);
    connect(): Promise<PoolClient>;
    query<R = Record<string, unknown>>(text: string, values?: unknown[]): Promise<QueryResult<R>>;
    end(): Promise<void>;
  }
  export class Client {
    query(...args: unknown[]): unknown;
  }
  const pg: { Pool: typeof Pool; Client: typeof Client };
  export default pg;
}
