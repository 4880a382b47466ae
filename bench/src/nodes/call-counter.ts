import { Redis } from 'ioredis';
import pg from 'pg';

/**
 * Counts what this process sends to PostgreSQL (statements, by verb and table) and to Redis
 * (commands, Lua scripts by name, pipelines), so a run can say how many round trips an event
 * costs each process, and which. Bench instrumentation: it wraps `pg`'s and ioredis's send
 * functions in the bench's own processes (the ones MikroORM, BullMQ and the library use); the
 * library is not touched. The Redis server's own statistics would include every other client of a
 * shared server.
 */

const counts = new Map<string, number>();
/** Statement texts repeat (parameters are apart), so each is classified once, keyed by its start. */
const kinds = new Map<string, string>();
const scriptNames = new Map<string, string>();
let installed = false;

function count(kind: string): void {
  counts.set(kind, (counts.get(kind) ?? 0) + 1);
}

/**
 * "insert outbox_message", "with … outbox_message", "begin": the verb and the first table named;
 * "begin + insert inbox_message" for a BEGIN sent in one message with the statement after it, and
 * "insert outbox_message + commit" for a statement sent with the COMMIT after it.
 */
export function statementKind(text: string): string {
  const sql = text
    .trim()
    .toLowerCase()
    .replace(/^\/\*.*?\*\/\s*/s, '');
  const begun = /^(?:begin|start transaction)\b[^;]*;\s*/.exec(sql);
  if (begun && begun[0].length < sql.length) return `begin + ${statementKind(sql.slice(begun[0].length))}`;
  const committed = /;\s*commit\s*;?$/.exec(sql);
  if (committed && committed.index > 0) return `${statementKind(sql.slice(0, committed.index))} + commit`;
  const verb = /^[a-z]+/.exec(sql)?.[0] ?? '?';
  const table = /\b(?:into|update|from)\s+"?([a-z_][a-z0-9_]*)"?/.exec(sql)?.[1];
  return table ? `${verb}${verb === 'with' ? ' …' : ''} ${table}` : verb;
}

type Sendable = { name: string; args: unknown[] };

export function installCallCounter(): void {
  if (installed) return;
  installed = true;
  // Plain `arguments` forwarding and a short key: the wrappers run on every statement and command,
  // and their cost is part of what the bench measures (about 2 % of a process's CPU, profiled).
  const query = pg.Client.prototype.query as (...args: unknown[]) => unknown;
  pg.Client.prototype.query = function (this: unknown, config: unknown) {
    const text = typeof config === 'string' ? config : (config as { text?: unknown } | undefined)?.text;
    if (typeof text === 'string') {
      // Its start and its end: a statement may carry the COMMIT after it.
      const key = text.length > 96 ? `${text.slice(0, 80)}${text.slice(-16)}` : text;
      let kind = kinds.get(key);
      if (kind === undefined) {
        kind = `pg ${statementKind(text)}`;
        if (kinds.size < 10_000) kinds.set(key, kind);
      }
      count(kind);
    }
    // eslint-disable-next-line prefer-rest-params
    return query.apply(this, arguments as unknown as unknown[]);
  };

  const sendCommand = Redis.prototype.sendCommand as (...args: unknown[]) => unknown;
  Redis.prototype.sendCommand = function (this: Redis, command: Sendable) {
    count(`redis ${commandKind(this, command)}`);
    // eslint-disable-next-line prefer-rest-params
    return sendCommand.apply(this, arguments as unknown as unknown[]);
  } as typeof Redis.prototype.sendCommand;
}

/** BullMQ's Lua scripts go out as EVALSHA <sha>; the client knows which script has that sha. */
function commandKind(client: Redis, command: Sendable): string {
  if (command.name !== 'evalsha' && command.name !== 'eval') return command.name;
  const sha = String(command.args[0]);
  let name = scriptNames.get(sha);
  if (!name) {
    const scripts = (client as unknown as { scriptsSet?: Record<string, { sha: string }> }).scriptsSet ?? {};
    name =
      Object.entries(scripts)
        .find(([, script]) => script.sha === sha)?.[0]
        ?.replace(/[-:][\d.]+$/, '') ?? 'script';
    scriptNames.set(sha, name);
  }
  return `${command.name} ${name}`;
}

export function callCounts(): Record<string, number> {
  return Object.fromEntries(counts);
}
