import { AggregateRoot } from '@nestjs/cqrs';
import { OutboxSetupError } from '../outbox.errors.js';
import { cqrsUnsupported } from '../outbox.messages.js';

/**
 * cqrs keeps an aggregate's uncommitted events in a private symbol field created by its
 * constructor. MikroORM hydrates entities without running constructors (nestjs/cqrs#1530), so a
 * loaded aggregate has no list and `apply()` throws. A lazy accessor on the prototype creates the
 * list on first use; constructed instances assign their own and never reach it.
 */
function installLazyEventList(): void {
  class Probe extends AggregateRoot {}
  const probe = new Probe() as unknown as Record<symbol, unknown>;
  const key = Object.getOwnPropertySymbols(probe).find((symbol) => Array.isArray(probe[symbol]));
  if (!key) {
    throw new OutboxSetupError(cqrsUnsupported());
  }
  const prototype = AggregateRoot.prototype as unknown as Record<symbol, unknown>;
  if (Object.getOwnPropertyDescriptor(prototype, key)) return;
  Object.defineProperty(prototype, key, {
    configurable: true,
    get(this: Record<symbol, unknown>) {
      const list: unknown[] = [];
      Object.defineProperty(this, key, { value: list, writable: true, configurable: true, enumerable: true });
      return list;
    },
    set(this: Record<symbol, unknown>, value: unknown) {
      Object.defineProperty(this, key, { value, writable: true, configurable: true, enumerable: true });
    },
  });
}

installLazyEventList();

export function isAggregateRoot(entity: unknown): entity is AggregateRoot {
  return entity instanceof AggregateRoot;
}

/** Drops exactly the events that were written, keeping any applied while the flush ran. */
export function forgetEvents(aggregate: AggregateRoot, written: ReadonlySet<object>): void {
  const events = aggregate.getUncommittedEvents() as object[];
  const kept = events.filter((event) => !written.has(event));
  events.length = 0;
  events.push(...kept);
}
