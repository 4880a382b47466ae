import { afterAll, afterEach, beforeAll, describe, expect, it } from '@jest/globals';
import { EntityManager } from '@mikro-orm/postgresql';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { OutboxDeadLetters, OutboxMonitor, OutboxOptionsError } from 'nest-outbox';
import { OutboxHealthIndicator, OutboxHealthModule } from 'nest-outbox/health';
import { HealthController } from '../../apps/shared/src/health.controller.js';
import { freshDatabase } from '../support/database.js';
import { PrivateRedis, removePrefix, uniquePrefix } from '../support/redis.js';
import { waitUntil } from '../support/wait.js';
import {
  CountShipment,
  NotifyCarrier,
  ParcelShipped,
  broken,
  prepareOpsDatabase,
  startOpsApp,
  type OpsApp,
} from './support/ops-app.js';

/** A handler only a newer build of the service has. */
@EventsHandler(ParcelShipped)
class AuditShipment implements IEventHandler<ParcelShipped> {
  constructor(private readonly em: EntityManager) {}
  handle(): Promise<void> {
    return Promise.resolve(void this.em);
  }
}

async function health(app: OpsApp): Promise<{ code: number; body: any }> {
  const response = await fetch(`${app.url}/health`);
  return { code: response.status, body: await response.json() };
}

/** The outbox entry of a terminus answer, wherever terminus put it (info when up or degraded, error when down). */
const outboxOf = (body: any) => body.details.outbox;

describe('the outbox health indicator (nest-outbox/health) behind GET /health', () => {
  const prefixes: string[] = [];
  const apps: OpsApp[] = [];
  let databaseUrl: string;
  const start = async (spec: Omit<Parameters<typeof startOpsApp>[0], 'databaseUrl' | 'controllers'>) => {
    const controllers = spec.imports ? [HealthController] : [];
    const app = await startOpsApp({ databaseUrl, controllers, ...spec });
    apps.push(app);
    return app;
  };
  const prefix = (name: string) => {
    prefixes.push(uniquePrefix(name));
    return prefixes[prefixes.length - 1];
  };
  const sql = (app: OpsApp, query: string) => app.orm.em.getConnection().execute(query);

  beforeAll(async () => {
    databaseUrl = await freshDatabase('ops_health');
    await prepareOpsDatabase(databaseUrl);
  });

  afterEach(async () => {
    broken.clear();
    await Promise.all(apps.splice(0).map((app) => app.close()));
    const app = await startOpsApp({ databaseUrl, outbox: { prefix: 'unused', relay: { enabled: false } } });
    await sql(app, 'truncate outbox_message, inbox_message, effect');
    await app.close();
  });

  afterAll(async () => {
    await Promise.all(prefixes.map((name) => removePrefix(name)));
  });

  it('answers 200 "ok" with every figure when messages move and nothing waits for an operator', async () => {
    const app = await start({ outbox: { prefix: prefix('health-ok') }, imports: [OutboxHealthModule.forRoot()] });
    await app.publish(new ParcelShipped('p1', 'fragile'));
    await app.app.get(OutboxMonitor).waitUntilSettled();

    const { code, body } = await health(app);
    expect(code).toBe(200);
    expect(body.status).toBe('ok');
    expect(outboxOf(body)).toEqual({
      status: 'up',
      service: 'shipping',
      relay: { enabled: true, lastActiveMsAgo: expect.any(Number) },
      pending: 0,
      due: 0,
      oldestDueMs: 0,
      stuck: 0,
      expiredLeases: 0,
      oldestExpiredLeaseMs: 0,
      deadLetters: 0,
      heldKeys: 0,
      oldestHeldMs: 0,
      waitingForHandlers: { handlers: [], messages: 0, oldestMs: 0 },
      problems: [],
    });
    expect(outboxOf(body).relay.lastActiveMsAgo).toBeLessThan(5000);
  });

  it('is "degraded" (still 200) while a dead letter waits for an operator; a check may leave dead letters out', async () => {
    const app = await start({ outbox: { prefix: prefix('health-dead') }, imports: [OutboxHealthModule.forRoot()] });
    broken.add('NotifyCarrier');
    await app.publish(new ParcelShipped('p2', 'fragile'));
    await waitUntil('a dead letter', async () => (await app.app.get(OutboxDeadLetters).count()) === 1);

    const { code, body } = await health(app);
    expect(code).toBe(200);
    expect(body.status).toBe('degraded');
    expect(outboxOf(body)).toMatchObject({
      status: 'degraded',
      deadLetters: 1,
      problems: ["1 dead letter(s) in this service's queue (limit 0)"],
    });
    const ready = await app.app.get(OutboxHealthIndicator).isHealthy('outbox', { deadLetters: false });
    expect(ready.outbox).toMatchObject({ status: 'up', deadLetters: 1, problems: [] });
  });

  it('is "down" (503) when rows wait too long, leases expired with nobody taking them, and reports stuck rows', async () => {
    // No relay in this process (nor anywhere), nothing sent on commit: what it writes stays pending.
    const app = await start({
      outbox: { prefix: prefix('health-late'), relay: { enabled: false, dispatchOnCommit: false } },
      imports: [OutboxHealthModule.forRoot()],
    });
    const [late, leased, stuck] = await app.publish(
      new ParcelShipped('p3', 'a'),
      new ParcelShipped('p4', 'b'),
      new ParcelShipped('p5', 'c'),
    );
    await sql(app, `update outbox_message set occurred_at = now() - interval '5 minutes' where id = '${late}'`);
    await sql(
      app,
      `update outbox_message set attempts = 1, locked_until = now() - interval '2 minutes' where id = '${leased}'`,
    );
    await sql(app, `update outbox_message set attempts = 10, last_error = 'refused' where id = '${stuck}'`);

    const { code, body } = await health(app);
    expect(code).toBe(503);
    expect(body.status).toBe('error');
    expect(body.error.outbox).toMatchObject({
      status: 'down',
      relay: { enabled: false, lastActiveMsAgo: null },
      pending: 3,
      due: 2,
      stuck: 1,
      expiredLeases: 1,
    });
    expect(body.error.outbox.oldestDueMs).toBeGreaterThanOrEqual(300_000);
    expect(body.error.outbox.problems).toEqual([
      expect.stringMatching(/^the oldest due outbox row has waited 30\d s \(limit 60 s\): no relay is keeping up$/),
      expect.stringMatching(/^1 claimed row\(s\) kept an expired lease for 12\d s: no relay took them back$/),
      '1 outbox row(s) stuck after relay.maxAttempts refused enqueues (limit 0)',
    ]);
  });

  it("is down while this process's relay cannot drain and rows are due, and up again once it can", async () => {
    const redis = await PrivateRedis.start();
    try {
      const app = await start({
        outbox: { prefix: prefix('health-relay'), redis: redis.url, relay: { intervalMs: 50, maxBackoffMs: 200 } },
        imports: [OutboxHealthModule.forRoot({ thresholds: { relayStalledMs: 500 } })],
      });
      await app.publish(new ParcelShipped('p6', 'before'));
      await app.app.get(OutboxMonitor).waitUntilSettled();
      expect((await health(app)).code).toBe(200);

      await redis.stop();
      await app.publish(new ParcelShipped('p7', 'during'));
      let body: any;
      await waitUntil('the health check to see the stalled relay', async () => {
        body = (await health(app)).body;
        return body.error.outbox?.problems.some((problem: string) => problem.includes('relay has not finished'));
      });
      expect(body.error.outbox.due).toBe(1);
      expect(body.error.outbox.deadLetters).toBeNull();
      expect(body.error.outbox.problems).toEqual(
        expect.arrayContaining([
          expect.stringMatching(/^this process's relay has not finished a drain for \d+ s while 1 row\(s\) are due$/),
          expect.stringMatching(/^could not read the dead letters: /),
        ]),
      );

      await redis.start();
      await waitUntil('the health check to be ok again', async () => (await health(app)).code === 200);
      await app.app.get(OutboxMonitor).waitUntilSettled();
    } finally {
      await Promise.all(apps.splice(0).map((app) => app.close()));
      await redis.stop();
    }
  });

  it('is down when messages wait for a handler no live process of the service has (a rollback)', async () => {
    const shared = prefix('health-waiting');
    // A newer build registers AuditShipment and goes away; the older build is the only one left.
    const newer = await start({ outbox: { prefix: shared }, handlers: [CountShipment, NotifyCarrier, AuditShipment] });
    await newer.close();
    apps.splice(apps.indexOf(newer), 1);
    const older = await start({ outbox: { prefix: shared }, imports: [OutboxHealthModule.forRoot()] });
    await older.publish(new ParcelShipped('p8', 'needs the audit'));
    const indicator = older.app.get(OutboxHealthIndicator);
    await waitUntil('the message to wait for AuditShipment', async () => {
      const result = await indicator.isHealthy('outbox', { waitingForHandlersMs: 0 });
      return result.outbox.status === 'down';
    });
    const result = await indicator.isHealthy('outbox', { waitingForHandlersMs: 0 });
    expect(result.outbox.waitingForHandlers).toMatchObject({
      handlers: ['ops.parcel-shipped/AuditShipment'],
      messages: 1,
    });
    expect(result.outbox.problems).toEqual([
      expect.stringMatching(
        /^1 message\(s\) waited \d+ s for handler\(s\) no live process has: ops.parcel-shipped\/AuditShipment$/,
      ),
    ]);
    // Within the default minute it is reported, not yet a reason to be down.
    expect((await health(older)).body.details.outbox).toMatchObject({ status: 'up', problems: [] });
  });

  it('refuses a threshold that is not a number of at least 0 (or false), at the import line', () => {
    expect(() => OutboxHealthModule.forRoot({ thresholds: { deadLetters: -1 } })).toThrow(OutboxOptionsError);
    expect(() => OutboxHealthModule.forRoot({ thresholds: { oldestPendingMs: '1m' as never } })).toThrow(
      'Invalid nest-outbox health option "thresholds.oldestPendingMs": expected a number of at least 0, ' +
        'or false to switch the check off, got "1m".',
    );
    expect(() => OutboxHealthModule.forRoot({ timeoutMs: 0 })).toThrow(OutboxOptionsError);
  });
});
