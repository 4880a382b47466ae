import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { waitUntil } from '../support/wait.js';
import { BankWorld } from './support/bank-world.js';
import { NO_FAULTS, auditLedger, faults } from './support/ledger-audit.js';

/**
 * Issue 8 item 10, in separate OS processes: the consuming service `ledger` (its own database) is
 * down — every process killed — while the producing service `bank` keeps writing. The producer's
 * relay routes every row to the ledger's queue all the same (it never names its consumers: the
 * ledger's subscription in Redis outlives its processes); restarted, the ledger drains the backlog,
 * every handler once per message, CreditLedger in each account's order.
 */
describe('a consumer service that was down drains its backlog after restart (separate processes)', () => {
  const BACKLOG = 600;
  let world: BankWorld;

  beforeAll(async () => {
    world = await BankWorld.create('deploy_down');
  }, 60_000);

  afterAll(async () => {
    await world?.dispose();
  });

  it('writes go on while every ledger process is down; after restart each message is handled once', async () => {
    const producer = world.producer({ WITHDRAWALS: 1 });
    const first = [world.consumer('ledger-a', 'v2'), world.consumer('ledger-b', 'v2')];
    await Promise.all([producer.ready, ...first.map((node) => node.ready)]);
    await waitUntil(
      'the ledger keeps up',
      async () => ((await world.effectCounts()).CreditLedger ?? 0) >= 50,
      60_000,
      200,
    );

    // Down: both processes killed in the middle of the stream (their jobs in hand stall).
    for (const node of first) node.signal('SIGKILL');
    await Promise.all(first.map((node) => node.exited));
    const writtenBefore = await world.messageCount();
    await waitUntil(
      `${BACKLOG} more messages written`,
      async () => (await world.messageCount()) >= writtenBefore + BACKLOG,
      120_000,
      250,
    );
    producer.child.send({ kind: 'stop' });
    await producer.waitFor('stopped');
    const written = await world.messageCount();

    // The producer got rid of every row without any ledger process: they wait in the ledger's queue.
    await waitUntil(
      'the bank relay dispatched every row',
      async () => (await world.monitor.backlog()).pending === 0,
      30_000,
      100,
    );
    const queued = await world.ledgerQueue.getJobCounts('waiting');
    expect(queued.waiting).toBeGreaterThanOrEqual(written - writtenBefore);
    expect(await world.monitor.isSettled()).toBe(false);
    // Once the killed processes' heartbeats are stale, the registry says nobody serves the ledger's handlers.
    await waitUntil(
      'no live ledger process',
      async () => (await world.subscriptions.get('ledger')).live.length === 0,
      30_000,
      500,
    );
    expect((await world.subscriptions.waiting('ledger', 5000)).messages).toBeGreaterThanOrEqual(
      written - writtenBefore,
    );

    const restartedAt = Date.now();
    const again = [world.consumer('ledger-c', 'v2'), world.consumer('ledger-d', 'v2')];
    await Promise.all(again.map((node) => node.ready));
    await world.monitor.waitUntilSettled(180_000, 250);
    const drainMs = Date.now() - restartedAt;
    const audit = await auditLedger(world);

    console.log(
      `consumer down: ${written} messages, ${written - writtenBefore} written while the ledger was down, ` +
        `drained in ${(drainMs / 1000).toFixed(1)} s after restart (boot included), ${audit.handedBack} set aside (parked behind their key)`,
    );
    expect(faults(audit)).toEqual(NO_FAULTS);
    expect(audit.messages).toHaveLength(written);
    expect(audit.messages.filter((m) => m.type === 'bank.withdrawn.v1').length).toBeGreaterThan(0);
    expect(audit.messages.every((m) => m.stamped.length === (m.type === 'bank.deposited.v1' ? 2 : 1))).toBe(true);
  }, 420_000);
});
