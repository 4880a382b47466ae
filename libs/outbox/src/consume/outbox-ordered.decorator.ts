import 'reflect-metadata';

const ORDERED = Symbol('nest-outbox:ordered');

/**
 * Marks an `@EventsHandler` as ordered: it handles the messages of one key (an aggregate, or
 * `publish({ key })`) one at a time, in commit order, across processes, retries and crashes. A
 * message that keeps failing holds back only the later messages of its own key, for this handler.
 *
 * @example @EventsHandler(OrderPlaced, OrderPaid) @OutboxOrdered() export class OrderProjector { ... }
 */
export function OutboxOrdered(): ClassDecorator {
  return (target) => Reflect.defineMetadata(ORDERED, true, target);
}

export function isOrderedHandler(handlerClass: Function): boolean {
  return Reflect.getMetadata(ORDERED, handlerClass) === true;
}
