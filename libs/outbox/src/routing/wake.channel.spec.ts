import { describe, expect, it } from '@jest/globals';
import type { RedisClient } from './redis.connection.js';
import { WakeChannel } from './wake.channel.js';

/** A client whose publishes resolve only when the test says so. */
function fakeClient() {
  const published: string[] = [];
  const pending: Array<() => void> = [];
  const client = {
    status: 'ready',
    publish: (channel: string) =>
      new Promise<number>((resolve) => {
        published.push(channel);
        pending.push(() => resolve(1));
      }),
  } as unknown as RedisClient;
  return { client, published, settleNext: () => pending.shift()?.() };
}

/** Lets what is queued run: publishes wait for the event loop's next turn, their results for microtasks. */
const flush = async () => {
  for (let turn = 0; turn < 3; turn++) {
    await new Promise((resolve) => setImmediate(resolve));
    for (let i = 0; i < 10; i++) await Promise.resolve();
  }
};

describe('WakeChannel', () => {
  it('coalesces a burst of commits into the publish in flight plus one more', async () => {
    const { client, published, settleNext } = fakeClient();
    const channel = new WakeChannel(
      'wake',
      () => client,
      () => client,
    );
    for (let i = 0; i < 50; i++) channel.publish();
    await flush();
    expect(published).toEqual(['wake']);
    settleNext();
    await flush();
    expect(published).toEqual(['wake', 'wake']);
    settleNext();
    await flush();
    expect(published).toHaveLength(2);
  });

  it('after close, a held-back publish whose client is gone neither publishes nor throws', async () => {
    const { client, published, settleNext } = fakeClient();
    let open = true;
    const channel = new WakeChannel(
      'wake',
      () => {
        if (!open) throw new Error('closed');
        return client;
      },
      () => client,
    );
    channel.publish();
    channel.publish(); // held back behind the first
    open = false;
    channel.close();
    settleNext();
    await flush();
    expect(published).toEqual(['wake']);
    channel.publish();
    await flush();
    expect(published).toEqual(['wake']);
  });
});
