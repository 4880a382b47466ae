import { afterEach, describe, expect, it, jest } from '@jest/globals';
import type { MikroORM } from '@mikro-orm/core';
import { Logger } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { OutboxRetentionOptions } from '../options/outbox-options.interface.js';
import { resolveOutboxOptions } from '../options/resolve-options.js';
import type { OutboxQueues } from '../routing/outbox-queues.js';
import { OutboxRetention } from './outbox-retention.js';
import type { InboxMark } from './retention.store.js';

const LIVE = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';
const DONE = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5c';

type Statement = 'outbox delete' | 'marks page' | 'marks delete';

/**
 * A connection answering from a script: outbox deletes take the next count, mark pages the next
 * page, mark deletes report how many marks they were given. Every call is recorded.
 */
function fakeDatabase(script: { outbox: number[]; pages?: InboxMark[][] }) {
  const calls: Array<{ statement: Statement; params: unknown[] }> = [];
  let gate: Promise<void> = Promise.resolve();
  let active = 0;
  let maxActive = 0;
  const execute = async (sql: string, params: unknown[]) => {
    const statement: Statement = sql.startsWith('select')
      ? 'marks page'
      : sql.includes('"inbox_message"')
        ? 'marks delete'
        : 'outbox delete';
    calls.push({ statement, params });
    active++;
    maxActive = Math.max(maxActive, active);
    try {
      await gate;
      if (statement === 'marks page') return script.pages?.shift() ?? [];
      if (statement === 'marks delete') return { affectedRows: String(params[0]).split(',').length };
      const next = script.outbox.shift();
      if (next === undefined) throw new Error('unexpected outbox delete');
      return [{ deleted: next }];
    } finally {
      active--;
    }
  };
  const orm = { em: { getConnection: () => ({ execute }) } } as unknown as MikroORM;
  return {
    orm,
    calls,
    of: (statement: Statement) => calls.filter((call) => call.statement === statement),
    maxActive: () => maxActive,
    /** Holds every statement until the returned function is called. */
    hold(): () => void {
      let release!: () => void;
      gate = new Promise((resolve) => (release = resolve));
      return release;
    },
  };
}

/** Lets queued promise callbacks run until `condition` holds (no timers involved). */
async function settleUntil(condition: () => boolean): Promise<void> {
  for (let i = 0; i < 100 && !condition(); i++) await Promise.resolve();
  expect(condition()).toBe(true);
}

function mark(messageId: string, handler: string, processedAt = '2026-01-01 00:00:00.123456+00'): InboxMark {
  return { messageId, handler, processedAt };
}

function retentionWith(db: ReturnType<typeof fakeDatabase>, retention: OutboxRetentionOptions = {}, live = [LIVE]) {
  const asked: string[][] = [];
  const queue = {
    mayStillRun: async (ids: string[]) => {
      asked.push(ids);
      return new Set(ids.filter((id) => live.includes(id)));
    },
  } as unknown as OutboxQueues;
  const scheduler = new SchedulerRegistry();
  const options = resolveOutboxOptions({ service: 'spec', retention: { batchSize: 2, ...retention } });
  return { service: new OutboxRetention(db.orm, scheduler, queue, options), scheduler, asked };
}

describe('OutboxRetention', () => {
  afterEach(() => {
    jest.useRealTimers();
    jest.restoreAllMocks();
  });

  it('deletes dispatched rows in batches until one comes back short', async () => {
    const db = fakeDatabase({ outbox: [2, 2, 1] });
    const { service } = retentionWith(db, { dispatchedAfterSeconds: 60 });

    expect(await service.runOnce()).toEqual({ outboxDeleted: 5, inboxDeleted: 0 });
    expect(db.of('outbox delete').map((call) => call.params)).toEqual([
      [60, 2],
      [60, 2],
      [60, 2],
    ]);
  });

  it('keeps old inbox marks whose message may still run, pages on past them, and deletes the rest', async () => {
    const first = [mark(LIVE, 'A'), mark(DONE, 'A', '2026-01-01 00:00:00.5+00')];
    const second = [mark(DONE, 'B', '2026-01-01 00:00:01+00')];
    const db = fakeDatabase({ outbox: [0], pages: [first, second] });
    const { service, asked } = retentionWith(db, { inboxAfterSeconds: 3600 });

    expect(await service.runOnce()).toEqual({ outboxDeleted: 0, inboxDeleted: 2 });
    expect(asked).toEqual([[LIVE, DONE], [DONE]]);
    // The live message's mark is never offered for deletion.
    expect(db.of('marks delete').map((call) => call.params[0])).toEqual([`{${DONE}}`, `{${DONE}}`]);
    expect(db.of('marks delete').map((call) => call.params[1])).toEqual(['{"A"}', '{"B"}']);
    // The second page starts after the last mark of the first, at microsecond precision.
    expect(db.of('marks page')[1].params.slice(1, 4)).toEqual(['2026-01-01 00:00:00.5+00', DONE, 'A']);
  });

  it('never runs two passes at once: a second call waits for the first', async () => {
    const db = fakeDatabase({ outbox: [1, 1] });
    const { service } = retentionWith(db);
    const release = db.hold();
    const first = service.runOnce();
    const second = service.runOnce();
    await settleUntil(() => db.calls.length === 1);
    release();

    expect(await Promise.all([first, second])).toEqual([
      { outboxDeleted: 1, inboxDeleted: 0 },
      { outboxDeleted: 1, inboxDeleted: 0 },
    ]);
    expect(db.maxActive()).toBe(1);
  });

  it('runs on its interval, logs a failing cleanup once per outage and says when it recovered', async () => {
    jest.useFakeTimers();
    const error = jest.spyOn(Logger.prototype, 'error').mockImplementation(() => undefined);
    const log = jest.spyOn(Logger.prototype, 'log').mockImplementation(() => undefined);
    // The script is empty, so every delete fails, until counts are added.
    const script = { outbox: [] as number[] };
    const db = fakeDatabase(script);
    const { service, scheduler } = retentionWith(db, { intervalMs: 100 });
    service.onApplicationBootstrap();
    expect(scheduler.getIntervals()).toEqual(['nest-outbox:retention:spec']);

    await jest.advanceTimersByTimeAsync(350);
    expect(db.calls).toHaveLength(3);
    expect(error).toHaveBeenCalledTimes(1);
    expect(String(error.mock.calls[0][0])).toContain('Retention cleanup failed (unexpected outbox delete)');

    script.outbox.push(0);
    await jest.advanceTimersByTimeAsync(100);
    expect(log).toHaveBeenCalledTimes(1);
    expect(String(log.mock.calls[0][0])).toContain('Retention cleanup recovered');

    await service.beforeApplicationShutdown();
    expect(scheduler.getIntervals()).toEqual([]);
  });

  it('is not scheduled when disabled, yet runOnce still works', async () => {
    const db = fakeDatabase({ outbox: [1] });
    const { service, scheduler } = retentionWith(db, { enabled: false });
    service.onApplicationBootstrap();
    expect(scheduler.getIntervals()).toEqual([]);
    expect(await service.runOnce()).toEqual({ outboxDeleted: 1, inboxDeleted: 0 });
  });

  it('at shutdown waits for the running pass, which stops after its current batch', async () => {
    const db = fakeDatabase({ outbox: [2, 2, 2] });
    const { service } = retentionWith(db);
    const release = db.hold();
    const pass = service.runOnce();
    await settleUntil(() => db.calls.length === 1);
    let stopped = false;
    const shutdown = service.beforeApplicationShutdown().then(() => (stopped = true));
    await Promise.resolve();
    expect(stopped).toBe(false);
    release();
    await shutdown;

    expect(await pass).toEqual({ outboxDeleted: 2, inboxDeleted: 0 });
    expect(db.calls).toHaveLength(1);
  });
});
