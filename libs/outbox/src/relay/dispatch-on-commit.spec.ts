import { describe, expect, it } from '@jest/globals';
import type { ResolvedOutboxOptions } from '../options/outbox-options.interface.js';
import { CommitSignal } from '../routing/commit.signal.js';
import type { RoutingTable, SubscriptionRegistry } from '../routing/subscription.registry.js';
import type { OutboxRow } from '../store/outbox-row.js';
import type { OutboxMetrics } from '../telemetry/outbox.metrics.js';
import type { RelayCounters } from '../telemetry/process-counters.js';
import { DispatchOnCommit } from './dispatch-on-commit.js';
import type { RoutedBatch } from './message.router.js';
import type { RelayQueue } from './relay.queue.js';
import type { DispatchedRow, RelayStore } from './relay.store.js';

const TABLE: RoutingTable = new Map([
  ['spec.on-commit.paid.v1', [{ service: 'billing', handlers: [{ name: 'Bill', ordered: false, since: 0 }] }]],
]);

/**
 * A sender whose enqueue waits until `enqueued()` is called, or fails when given an error (or
 * answers at once with `hang: false`). `adds` counts the enqueues.
 */
function senderWith({ hang }: { hang: boolean }) {
  const releases: Array<{ ids: string[]; reason: string; spent: boolean }> = [];
  const marks: DispatchedRow[][] = [];
  const adds: string[][] = [];
  let enqueued: (error?: Error) => void = () => {};
  const store = {
    release: async (ids: string[], reason: string, spent: boolean) => {
      releases.push({ ids, reason, spent });
    },
    markDispatched: async (rows: DispatchedRow[]) => {
      marks.push(rows);
    },
  } as unknown as RelayStore;
  const queue = {
    add: (batch: RoutedBatch) => {
      adds.push([...batch.routedTo.keys()]);
      if (!hang) return Promise.resolve();
      return new Promise<void>((resolve, reject) => (enqueued = (error) => (error ? reject(error) : resolve())));
    },
    answers: async () => true,
  } as unknown as RelayQueue;
  const registry = {
    routes: async () => ({ version: '1', table: TABLE }),
    lastRoutes: async () => ({ version: '1', table: TABLE }),
  } as unknown as SubscriptionRegistry;
  const options = { service: 'orders', relay: { leaseMs: 30_000, batchSize: 500 } } as ResolvedOutboxOptions;
  const stats = { claimed: 0, dispatched: 0, failedBatches: 0, failedDrains: 0 } as RelayCounters;
  const metrics = { enqueueFailed: () => undefined, messagesDispatched: () => undefined } as unknown as OutboxMetrics;
  const sender = new DispatchOnCommit(store, queue, registry, new CommitSignal(), options, stats, metrics, 'api:1');
  return { sender, releases, marks, adds, enqueued: (error?: Error) => enqueued(error) };
}

let rows = 0;
/** A row as capture hands it over once committed. */
function rowOf(amount: number): OutboxRow {
  const id = `0190a000-0000-7000-8000-${String(++rows).padStart(12, '0')}`;
  const headers = JSON.stringify({ messageId: id, correlationId: id, occurredAt: new Date().toISOString() });
  const payload = JSON.stringify({ amount });
  const common = { id, type: 'spec.on-commit.paid.v1', payload, headers, key: null };
  return { ...common, aggregateType: null, aggregateId: null, occurredAt: new Date(), availableAt: null };
}

/** Lets promise callbacks and the 20 ms mark timer run. */
const settle = (ms = 0) => new Promise((resolve) => setTimeout(resolve, ms));

describe('DispatchOnCommit', () => {
  it('a shutdown out of time hands back the rows not marked yet, on their way or waiting, spending no attempt', async () => {
    const { sender, releases } = senderWith({ hang: true });
    const [first, second, third] = [rowOf(1), rowOf(2), rowOf(3)];
    sender.send([first, second], Date.now());
    await settle();
    // The first batch is on its way (its enqueue does not answer); this one waits behind it.
    sender.send([third], Date.now());

    expect(await sender.releaseInFlight()).toBe(3);
    expect(releases).toEqual([
      { ids: [first.id, second.id, third.id], reason: expect.stringMatching(/shutdown ran out of time/), spent: false },
    ]);
    expect(await sender.releaseInFlight()).toBe(0);
    // Shutting down: later commits' rows are written for a relay.
    expect(sender.takes(rowOf(4))).toBe(false);
  });

  it('rows once marked are not handed back at shutdown', async () => {
    const { sender, releases, marks } = senderWith({ hang: false });
    const row = rowOf(1);
    sender.send([row], Date.now());
    while (marks.length === 0) await settle(5);
    expect(marks).toEqual([[{ id: row.id, type: 'spec.on-commit.paid.v1', routedTo: ['billing'] }]]);
    expect(await sender.releaseInFlight()).toBe(0);
    expect(releases).toEqual([]);
  });

  it('rows that waited behind a slow send past half their lease go to the relays, not to BullMQ', async () => {
    const { sender, releases, adds, enqueued } = senderWith({ hang: true });
    const [first, late] = [rowOf(1), rowOf(2)];
    sender.send([first], Date.now());
    await settle();
    // Written just under half a lease (15 s) ago: still this process's to send when committed.
    sender.send([late], Date.now() - 14_950);
    await settle(60);
    enqueued();
    while (releases.length === 0) await settle(5);

    expect(adds).toEqual([[first.id]]);
    expect(releases).toEqual([{ ids: [late.id], reason: expect.stringMatching(/past half its lease/), spent: false }]);
  });

  it('a failed enqueue hands back its batch and the rows waiting behind it, which it does not try', async () => {
    const { sender, releases, adds, enqueued } = senderWith({ hang: true });
    const [first, second] = [rowOf(1), rowOf(2)];
    sender.send([first], Date.now());
    await settle();
    sender.send([second], Date.now());
    enqueued(new Error('Connection is closed.'));
    while (releases.length === 0) await settle(5);

    expect(adds).toHaveLength(1);
    expect(releases).toEqual([
      { ids: [first.id, second.id], reason: expect.stringMatching(/enqueue after commit failed/), spent: false },
    ]);
  });
});
