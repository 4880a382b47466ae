import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import type { Queue } from 'bullmq';
import {
  OUTBOX_QUEUE,
  OutboxEvent,
  OutboxService,
  OutboxSubscriptions,
  currentMessage,
  type OutboxJobData,
} from 'nest-outbox';
import { newMessageId } from '../libs/outbox/src/message/message-id.js';
import { freshDatabase } from './support/database.js';
import { prepareFixtureDatabase, startFixtureApp, type FixtureApp } from './support/fixture.js';
import { REDIS_URL, removePrefix, uniquePrefix } from './support/redis.js';
import { waitUntil } from './support/wait.js';

/**
 * Version 3 of an event whose older producers wrote `{ name }` (v1) and `{ fullName }` (v2).
 * The payload stays plain JSON on the wire; upcasters lift it at read time.
 */
@OutboxEvent({
  name: 'test.member-joined',
  version: 3,
  upcast: {
    1: ({ name, ...rest }) => ({ ...rest, fullName: name }),
    2: (payload) => ({ ...payload, tier: 'basic' }),
  },
})
class MemberJoined {
  constructor(
    readonly memberId: string,
    readonly fullName: string,
    readonly tier: string,
  ) {}

  label(): string {
    return `${this.fullName} (${this.tier})`;
  }
}

const handled: Array<{ memberId: string; label: string; version: number | undefined }> = [];

@EventsHandler(MemberJoined)
class WelcomeMember implements IEventHandler<MemberJoined> {
  handle(event: MemberJoined): void {
    handled.push({ memberId: event.memberId, label: event.label(), version: currentMessage()!.headers.version });
  }
}

describe('versioned events: a v3 consumer reads what older producers wrote', () => {
  const prefix = uniquePrefix('versions');
  let app: FixtureApp;
  let queue: Queue<OutboxJobData>;
  /** The later build a test starts beside `app`. */
  let newer: FixtureApp | undefined;

  /** A row as a producer built before this version wrote it: its own payload shape, its own version header. */
  async function insertAsOldProducer(payload: object, version?: number): Promise<string> {
    const id = newMessageId();
    const headers = { messageId: id, correlationId: id, occurredAt: new Date().toISOString(), version };
    await app.sql(
      'insert into outbox_message (id, type, payload, headers, occurred_at) values (?, ?, ?::jsonb, ?::jsonb, now())',
      [id, 'test.member-joined', JSON.stringify(payload), JSON.stringify(headers)],
    );
    return id;
  }

  beforeAll(async () => {
    const url = await freshDatabase('versions');
    await prepareFixtureDatabase(url);
    app = await startFixtureApp(
      url,
      // A long backoff keeps a retried job visibly waiting for its next attempt.
      { redis: REDIS_URL, prefix, worker: { attempts: 3, backoff: { type: 'fixed', delayMs: 60_000 } } },
      [WelcomeMember],
    );
    queue = app.app.get<Queue<OutboxJobData>>(OUTBOX_QUEUE);
  });

  afterAll(async () => {
    if (newer && newer !== app) await newer.close();
    await app?.close();
    await removePrefix(prefix);
  });

  it('rows written at v1 and v2 are lifted 1→2→3; the current producer writes v3 with its version header', async () => {
    await insertAsOldProducer({ memberId: 'm1', name: 'Ada' });
    await insertAsOldProducer({ memberId: 'm2', fullName: 'Bo' }, 2);
    let id = '';
    await app.orm.em.fork().transactional(async () => {
      id = app.app.get(OutboxService).publish(new MemberJoined('m3', 'Cy', 'gold'));
    });
    const [row] = await app.sql('select headers from outbox_message where id = ?', [id]);
    expect(row.headers.version).toBe(3);

    await waitUntil('three members welcomed', () => handled.length === 3);
    await app.monitor.waitUntilSettled();
    expect(handled.sort((a, b) => a.memberId.localeCompare(b.memberId))).toEqual([
      { memberId: 'm1', label: 'Ada (basic)', version: undefined },
      { memberId: 'm2', label: 'Bo (basic)', version: 2 },
      { memberId: 'm3', label: 'Cy (gold)', version: 3 },
    ]);
  });

  it('a row written at a version newer than the class is handed back, no attempt spent, and handled by a build that knows it', async () => {
    const id = await insertAsOldProducer({ memberId: 'm4', fullName: 'Di', tier: 'gold', since: 2027 }, 4);
    await waitUntil('set aside for a newer build', async () => ((await queue.getJob(id))?.data.setAside ?? 0) >= 1);
    const job = (await queue.getJob(id))!;
    expect(await job.getState()).toBe('delayed');
    expect(job.attemptsMade).toBe(0);
    expect(job.data.waitingSince).toEqual(expect.any(Number));
    expect(handled.map((h) => h.memberId)).not.toContain('m4');

    // The newer build: the same handler (same name, so the same inbox key), the event at v4.
    newer = await startFixtureApp(app.databaseUrl, { redis: REDIS_URL, prefix }, [newerBuild()]);
    // Two builds in one Node process are two live processes, each with its own handlers.
    const live = (await newer.app.get(OutboxSubscriptions).get()).live;
    expect(live.map((process) => process.id)).toHaveLength(2);
    expect(new Set(live.map((process) => process.id)).size).toBe(2);
    // The deploy's next step: the old build stops. While both run, each may take the message, and
    // the old one only hands it back (about a second each time, as the newer build is live).
    const old = app;
    app = newer;
    await old.close();
    queue = newer.app.get<Queue<OutboxJobData>>(OUTBOX_QUEUE);
    // Its hand-back delay is only spacing; skip it (the newer build may already have taken it).
    await (await queue.getJob(id))!.promote().catch(() => undefined);
    await waitUntil('handled by the newer build', () => handled.some((h) => h.memberId === 'm4'));
    await waitUntil('completed', async () => (await queue.getJobState(id)) === 'completed');
    expect(handled.find((h) => h.memberId === 'm4')).toEqual({
      memberId: 'm4',
      label: 'Di (gold since 2027)',
      version: 4,
    });
    // Completing counts as its first attempt: handing it back spent none.
    expect((await queue.getJob(id))!.attemptsMade).toBe(1);
  });
});

/** The handler as a later build has it: the event grew `since` in v4. */
function newerBuild() {
  @OutboxEvent({
    name: 'test.member-joined',
    version: 4,
    upcast: {
      1: ({ name, ...rest }) => ({ ...rest, fullName: name }),
      2: (payload) => ({ ...payload, tier: 'basic' }),
      3: (payload) => ({ ...payload, since: 2026 }),
    },
  })
  class MemberJoinedV4 {
    constructor(
      readonly memberId: string,
      readonly fullName: string,
      readonly tier: string,
      readonly since: number,
    ) {}
  }
  @EventsHandler(MemberJoinedV4)
  class WelcomeMember implements IEventHandler<MemberJoinedV4> {
    handle(event: MemberJoinedV4): void {
      const label = `${event.fullName} (${event.tier} since ${event.since})`;
      handled.push({ memberId: event.memberId, label, version: currentMessage()!.headers.version });
    }
  }
  return WelcomeMember;
}
