import { describe, expect, it } from '@jest/globals';
import { resolveOutboxOptions } from '../options/resolve-options.js';
import type { LiveProcess, RoutingTable, SubscriptionRegistry } from '../routing/subscription.registry.js';
import { ServiceRegistration } from './service.registration.js';

const TYPE = 'bank.deposited.v1';

/** A registry where `registered` handlers of `ledger` are subscribed to TYPE and `live` processes beat. */
function registrationWith(registered: string[], live: Array<Pick<LiveProcess, 'id' | 'handlers'>>) {
  const table: RoutingTable = new Map([
    [TYPE, [{ service: 'ledger', handlers: registered.map((name) => ({ name, ordered: false, since: 0 })) }]],
  ]);
  const registry = {
    routes: async () => ({ version: '1', table }),
    live: async () => live.map((process) => ({ ...process, version: 'v', at: Date.now() })),
  } as unknown as SubscriptionRegistry;
  const options = resolveOutboxOptions({ service: 'ledger' });
  return new ServiceRegistration(registry, options, new Map(), 'host:1');
}

const runs = (...handlers: string[]) => handlers.map((handler) => `${TYPE}\t${handler}`);

describe('ServiceRegistration.stillExpected (what a hand-back still waits for)', () => {
  it('a registered handler is expected; served only when another live process has it', async () => {
    expect(await registrationWith(['GrantBonus'], []).stillExpected(TYPE, ['GrantBonus'])).toEqual({
      expected: ['GrantBonus'],
      served: false,
    });
    const served = registrationWith(['GrantBonus'], [{ id: 'host:2', handlers: runs('GrantBonus') }]);
    expect(await served.stillExpected(TYPE, ['GrantBonus'])).toEqual({ expected: ['GrantBonus'], served: true });
  });

  it('this process does not count as serving what it lacks', async () => {
    const self = registrationWith(['GrantBonus'], [{ id: 'host:1', handlers: runs('GrantBonus') }]);
    expect(await self.stillExpected(TYPE, ['GrantBonus'])).toEqual({ expected: ['GrantBonus'], served: false });
  });

  it('a handler retired since the message was routed still runs while a live process has it, and is dropped once none has', async () => {
    const olderBuildAlive = registrationWith([], [{ id: 'host:2', handlers: runs('GrantBonus') }]);
    expect(await olderBuildAlive.stillExpected(TYPE, ['GrantBonus'])).toEqual({
      expected: ['GrantBonus'],
      served: true,
    });
    const noneLeft = registrationWith([], [{ id: 'host:2', handlers: runs('CreditLedger') }]);
    expect(await noneLeft.stillExpected(TYPE, ['GrantBonus'])).toEqual({ expected: [], served: false });
  });

  it('served needs every expected handler somewhere else', async () => {
    const partly = registrationWith(['GrantBonus', 'Audit'], [{ id: 'host:2', handlers: runs('GrantBonus') }]);
    expect(await partly.stillExpected(TYPE, ['Audit', 'GrantBonus'])).toEqual({
      expected: ['Audit', 'GrantBonus'],
      served: false,
    });
  });
});
