import { afterEach, describe, expect, it, jest } from '@jest/globals';
import type { MikroORM } from '@mikro-orm/core';
import { Logger } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import type { OutboxQueue } from '../outbox.queue.js';
import { resolveOutboxOptions, type OutboxRetentionOptions } from '../outbox.options.js';
import { OutboxRetention } from './retention.service.js';

const DEAD = '0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b';

/** A connection whose deletes answer from a script: each call takes the next count of its table. */
function fakeDatabase(script: { outbox: number[]; inbox: number[] }) {
  const calls: Array<{ table: 'outbox' | 'inbox'; params: unknown[] }> = [];
  let gate: Promise<void> = Promise.resolve();
  let active = 0;
  let maxActive = 0;
  const execute = async (sql: string, params: unknown[]) => {
    const table = sql.includes('"inbox_message"') && !sql.includes('"outbox_message"') ? 'inbox' : 'outbox';
    calls.push({ table, params });
    active++;
    maxActive = Math.max(maxActive, active);
    try {
      await gate;
      const next = script[table].shift();
      if (next === undefined) throw new Error(`unexpected ${table} delete`);
      return { affectedRows: next };
    } finally {
      active--;
    }
  };
  const orm = { em: { getConnection: () => ({ execute }) } } as unknown as MikroORM;
  return {
    orm,
    calls,
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

function retentionWith(db: ReturnType<typeof fakeDatabase>, retention: OutboxRetentionOptions = {}, failedIds = [DEAD, 'not-a-message-id']) {
  const queue = { get: () => ({ getRanges: async () => failedIds }) } as unknown as OutboxQueue;
  const scheduler = new SchedulerRegistry();
  const options = resolveOutboxOptions({ queueName: 'spec', retention: { batchSize: 7, ...retention } });
  return { service: new OutboxRetention(db.orm, scheduler, queue, options), scheduler };
}

describe('OutboxRetention', () => {
  afterEach(() => {
    jest.useRealTimers();
    jest.restoreAllMocks();
  });

  it('deletes in batches until one comes back short, and keeps the marks of dead letters', async () => {
    const db = fakeDatabase({ outbox: [7, 7, 3], inbox: [7, 0] });
    const { service } = retentionWith(db, { dispatchedAfterSeconds: 60, inboxAfterSeconds: 3600 });

    expect(await service.runOnce()).toEqual({ outboxDeleted: 17, inboxDeleted: 7 });
    expect(db.calls.map((call) => call.table)).toEqual(['outbox', 'outbox', 'outbox', 'inbox', 'inbox']);
    expect(db.calls[0].params).toEqual([60, 7]);
    // Only real message ids reach the SQL array literal.
    expect(db.calls[3].params).toEqual([3600, `{${DEAD}}`, 7]);
  });

  it('never runs two passes at once: a second call waits for the first', async () => {
    const db = fakeDatabase({ outbox: [1, 1], inbox: [0, 0] });
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
    const script = { outbox: [] as number[], inbox: [] as number[] };
    const db = fakeDatabase(script);
    const { service, scheduler } = retentionWith(db, { intervalMs: 100 });
    service.onApplicationBootstrap();
    expect(scheduler.getIntervals()).toEqual(['nest-outbox:retention:spec']);

    await jest.advanceTimersByTimeAsync(350);
    expect(db.calls).toHaveLength(3);
    expect(error).toHaveBeenCalledTimes(1);
    expect(String(error.mock.calls[0][0])).toContain('Retention cleanup failed (unexpected outbox delete)');

    script.outbox.push(0);
    script.inbox.push(0);
    await jest.advanceTimersByTimeAsync(100);
    expect(log).toHaveBeenCalledTimes(1);
    expect(String(log.mock.calls[0][0])).toContain('Retention cleanup recovered');

    await service.beforeApplicationShutdown();
    expect(scheduler.getIntervals()).toEqual([]);
  });

  it('is not scheduled when disabled, yet runOnce still works', async () => {
    const db = fakeDatabase({ outbox: [2], inbox: [0] });
    const { service, scheduler } = retentionWith(db, { enabled: false });
    service.onApplicationBootstrap();
    expect(scheduler.getIntervals()).toEqual([]);
    expect(await service.runOnce()).toEqual({ outboxDeleted: 2, inboxDeleted: 0 });
  });

  it('at shutdown waits for the running pass, which stops after its current batch', async () => {
    const db = fakeDatabase({ outbox: [7, 7, 7], inbox: [] });
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

    expect(await pass).toEqual({ outboxDeleted: 7, inboxDeleted: 0 });
    expect(db.calls).toHaveLength(1);
  });
});
