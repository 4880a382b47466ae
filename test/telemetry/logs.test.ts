import { afterAll, afterEach, beforeAll, describe, expect, it, jest } from '@jest/globals';
import { Logger } from '@nestjs/common';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { OutboxDeadLetters } from 'nest-outbox';
import { OutboxMetrics } from '../../libs/outbox/src/telemetry/outbox.metrics.js';
import { freshDatabase } from '../support/database.js';
import {
  Account,
  CountPings,
  Pinged,
  prepareFixtureDatabase,
  startFixtureApp,
  type FixtureApp,
} from '../support/fixture.js';
import { REDIS_URL, freePort, removePrefix, uniquePrefix } from '../support/redis.js';
import { waitUntil } from '../support/wait.js';

// No OpenTelemetry SDK in this file: logs are the library's own, and cost nothing extra.

const SECRET = 's3cret-pw';

@EventsHandler(Pinged)
class LedgerUnreachable implements IEventHandler<Pinged> {
  async handle(): Promise<void> {
    // A driver's error that quotes its connection string, password and all.
    throw new Error(`cannot reach postgres://ledger:${SECRET}@ledger-db:5432/ledger`);
  }
}

/** The fields of a logfmt line (bare or JSON-quoted values), as a log pipeline reads them. */
function fields(line: string): Record<string, string> {
  const parsed: Record<string, string> = {};
  for (const match of line.matchAll(/(\w+)=("(?:[^"\\]|\\.)*"|\S+)/g)) {
    parsed[match[1]] = match[2].startsWith('"') ? (JSON.parse(match[2]) as string) : match[2];
  }
  return parsed;
}

describe('failure logs: one structured line per failure, and no secrets', () => {
  const prefixes = [uniquePrefix('logs'), uniquePrefix('logs-redis')];
  const logged: string[] = [];
  let app: FixtureApp | undefined;

  beforeAll(() => {
    for (const level of ['log', 'warn', 'error'] as const) {
      jest.spyOn(Logger.prototype, level).mockImplementation((message: unknown) => {
        logged.push(String(message));
      });
    }
  });

  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  afterAll(async () => {
    jest.restoreAllMocks();
    await Promise.all(prefixes.map((prefix) => removePrefix(prefix)));
  });

  it('logs each failed handler run with message id, type, handler, attempt and error, then gives up', async () => {
    const databaseUrl = await freshDatabase('telemetry_logs');
    await prepareFixtureDatabase(databaseUrl);
    app = await startFixtureApp(
      databaseUrl,
      { redis: REDIS_URL, prefix: prefixes[0], worker: { attempts: 2, backoff: { type: 'fixed', delayMs: 10 } } },
      [LedgerUnreachable, CountPings],
    );
    expect(app.app.get(OutboxMetrics).enabled).toBe(false);
    const em = app.orm.em.fork();
    const account = new Account('logs-1', 'logs-1@example.com');
    account.ping('fails');
    await em.persist(account).flush();
    const [row] = await app.sql(`select id, headers from outbox_message`);
    // Without an SDK there is no active span, and nothing is stored for tracing.
    expect(row.headers.trace).toBeUndefined();

    const failures = () => logged.filter((line) => line.startsWith('event=outbox.handler.failed'));
    await waitUntil('two failure lines', () => failures().length === 2);
    expect(failures().map(fields)).toEqual([
      {
        event: 'outbox.handler.failed',
        service: 'fixture',
        message_id: row.id,
        type: 'Pinged',
        handler: 'LedgerUnreachable',
        attempt: '1',
        max_attempts: '2',
        next: 'retry',
        error: 'cannot reach postgres://ledger:***@ledger-db:5432/ledger',
      },
      expect.objectContaining({ message_id: row.id, attempt: '2', next: 'dead-letter' }),
    ]);
    // What the dead letter keeps (BullMQ's reason, the failure record) is redacted too.
    const [letter] = await app.app.get(OutboxDeadLetters).list();
    expect(letter.messageId).toBe(row.id);
    expect(JSON.stringify(letter)).not.toContain(SECRET);
    expect(logged.join('\n')).not.toContain(SECRET);
  });

  it('says a Redis outage in one structured line, without the password of the Redis URL', async () => {
    const databaseUrl = await freshDatabase('telemetry_logs_redis');
    await prepareFixtureDatabase(databaseUrl);
    const start = logged.length;
    app = await startFixtureApp(databaseUrl, {
      redis: `redis://default:${SECRET}@127.0.0.1:${await freePort()}`,
      prefix: prefixes[1],
    });
    const lines = () => logged.slice(start);
    await waitUntil('the relay outage logged', () =>
      lines().some((line) => line.startsWith('event=outbox.relay.outage')),
    );
    await waitUntil('the worker error logged', () =>
      lines().some((line) => line.startsWith('event=outbox.worker.redis_error')),
    );
    const outage = fields(lines().find((line) => line.startsWith('event=outbox.relay.outage'))!);
    expect(outage).toMatchObject({ service: 'fixture', error: expect.any(String), msg: expect.any(String) });
    expect(lines().join('\n')).not.toContain(SECRET);
  });
});
