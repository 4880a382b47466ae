import { AggregateRoot } from '@nestjs/cqrs';
import { OutboxSetupError } from '../outbox.errors.js';
import { cqrsUnsupported } from '../outbox.messages.js';

/**
 * Aggregates are recognised by shape, not by `instanceof AggregateRoot`: cqrs's
 * `WithAggregateRoot(Base)` mixin makes a new class per call, outside `AggregateRoot`'s chain.
 * Every such class keeps its uncommitted events under one private symbol of the mixin's module;
 * a probe instance tells which.
 */
const EVENTS: symbol = (() => {
  class Probe extends AggregateRoot {}
  const probe = new Probe() as unknown as Record<symbol, unknown>;
  const key = Object.getOwnPropertySymbols(probe).find((symbol) => Array.isArray(probe[symbol]));
  if (!key) throw new OutboxSetupError(cqrsUnsupported());
  return key;
})();

type Events = object[];
type Holder = Record<symbol, Events | undefined>;

/** Per class: the mixin prototype that makes it an aggregate, or null for any other entity. */
const mixinOfClass = new WeakMap<Function, object | null>();

/**
 * Events an aggregate handed to `publish()`/`publishAll()` (autoCommit, `commit()`), kept with it
 * until its next flush writes them: cqrs empties its own list once they are "published".
 */
const handedOver = new WeakMap<object, Events>();

/** The prototype owning cqrs's aggregate methods, if `prototype`'s chain has one. */
function mixinPrototypeOf(prototype: object | null): object | null {
  for (let current = prototype; current && current !== Object.prototype; current = Object.getPrototypeOf(current)) {
    if (Object.hasOwn(current, 'getUncommittedEvents') && Object.hasOwn(current, 'commit')) return current;
  }
  return null;
}

/**
 * Makes an entity class's aggregates work with the outbox, once per class; true when it is one.
 *
 * - MikroORM hydrates entities without running constructors (nestjs/cqrs#1530), so a loaded
 *   aggregate has no event list and `apply()` throws. A lazy accessor on the mixin prototype
 *   creates the list on first use; constructed instances assign their own through its setter.
 * - cqrs's own `publish`/`publishAll` do nothing until an EventPublisher is merged in, so
 *   `autoCommit` and `commit()` would drop events. An entity's own versions hand them to its next
 *   flush instead. A merged publisher (`mergeObjectContext`, `@Publishable`) still takes precedence.
 */
export function prepareAggregateClass(entityClass: Function): boolean {
  const known = mixinOfClass.get(entityClass);
  if (known !== undefined) return known !== null;
  const mixin = mixinPrototypeOf(entityClass.prototype as object);
  mixinOfClass.set(entityClass, mixin);
  if (!mixin) return false;
  installLazyEventList(mixin);
  installHandOver(entityClass.prototype as object, mixin);
  return true;
}

function installLazyEventList(mixin: object): void {
  if (Object.getOwnPropertyDescriptor(mixin, EVENTS)) return;
  const own = (target: object, value: unknown) =>
    Object.defineProperty(target, EVENTS, { value, writable: true, configurable: true, enumerable: true });
  Object.defineProperty(mixin, EVENTS, {
    configurable: true,
    get(this: object) {
      const list: Events = [];
      own(this, list);
      return list;
    },
    set(this: object, value: unknown) {
      own(this, value);
    },
  });
}

function installHandOver(prototype: object, mixin: object): void {
  const owner = (name: string) => {
    for (let current: object | null = prototype; current; current = Object.getPrototypeOf(current)) {
      if (Object.hasOwn(current, name)) return current;
    }
    return null;
  };
  const define = (name: string, value: Function) =>
    Object.defineProperty(prototype, name, { value, writable: true, configurable: true, enumerable: false });
  if (owner('publish') === mixin) {
    define('publish', function publish(this: object, event: object) {
      holdEvents(this, [event]);
    });
  }
  if (owner('publishAll') === mixin) {
    define('publishAll', function publishAll(this: object, events: Events) {
      holdEvents(this, events);
    });
  }
}

// AggregateRoot subclasses are the common case: prepared on import, before any entity is loaded.
installLazyEventList(mixinPrototypeOf(AggregateRoot.prototype)!);

export function isAggregate(entity: object): boolean {
  return prepareAggregateClass(entity.constructor);
}

/** Keeps events handed over by `publish`/`publishAll`/`commit()` for the aggregate's next flush. */
export function holdEvents(aggregate: object, events: readonly object[]): void {
  if (events.length === 0) return;
  const held = handedOver.get(aggregate);
  if (held) held.push(...events);
  else handedOver.set(aggregate, [...events]);
}

/**
 * The events a flush must write for an aggregate, oldest first: those handed over, then those
 * still uncommitted. Reads the list without creating one on a loaded aggregate that applied nothing.
 */
export function pendingEvents(aggregate: object): readonly object[] {
  const list = Object.hasOwn(aggregate, EVENTS) ? (aggregate as Holder)[EVENTS] : undefined;
  const held = handedOver.get(aggregate);
  if (!held) return list ?? [];
  return list && list.length > 0 ? [...held, ...list] : held;
}

/** Drops exactly the events that were written, keeping any applied or handed over while the flush ran. */
export function forgetEvents(aggregate: object, written: ReadonlySet<object>): void {
  const list = Object.hasOwn(aggregate, EVENTS) ? (aggregate as Holder)[EVENTS] : undefined;
  if (list) keepUnwritten(list, written);
  const held = handedOver.get(aggregate);
  if (held && keepUnwritten(held, written) === 0) handedOver.delete(aggregate);
}

function keepUnwritten(events: Events, written: ReadonlySet<object>): number {
  let kept = 0;
  for (const event of events) if (!written.has(event)) events[kept++] = event;
  events.length = kept;
  return kept;
}
