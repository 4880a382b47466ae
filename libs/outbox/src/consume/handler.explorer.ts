import { Injectable } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import type { IEventHandler } from '@nestjs/cqrs';
import { eventTypeOf } from '../message/event-type.js';
import { OutboxSetupError } from '../outbox.errors.js';
import { eventTypeTaken, handlerNameTaken, handlerRequestScoped } from '../outbox.messages.js';
import { isOrderedHandler } from './outbox-ordered.decorator.js';

// The metadata key @nestjs/cqrs's @EventsHandler writes (cqrs `decorators/constants`, not exported).
const EVENTS_HANDLER_METADATA = '__eventsHandler__';

export interface HandlerEntry {
  /** The handler's class name: its inbox key, so keep it stable. */
  name: string;
  instance: IEventHandler<object>;
  /** Runs the messages of one key in commit order (`@OutboxOrdered()` or `worker.ordered`). */
  ordered: boolean;
}

export interface EventRoute {
  eventClass: Function;
  handlers: HandlerEntry[];
}

/**
 * Finds every `@EventsHandler` provider, as the cqrs explorer does, and indexes them by stable type
 * name. The metadata is read from the instance's class, so handlers registered with `useFactory`
 * or `useValue` are found like plain class providers.
 */
@Injectable()
export class HandlerExplorer {
  constructor(private readonly discovery: DiscoveryService) {}

  /** Every handler by event type; `orderedByDefault` makes all of them ordered (`worker.ordered`). */
  explore(orderedByDefault = false): Map<string, EventRoute> {
    const routes = new Map<string, EventRoute>();
    const names = new Map<string, Function>();
    for (const wrapper of this.discovery.getProviders()) {
      const handlerClass = handlerClassOf(wrapper.instance) ?? handlerClassOf(wrapper.metatype?.prototype);
      if (!handlerClass) continue;
      const events = Reflect.getMetadata(EVENTS_HANDLER_METADATA, handlerClass) as Function[];
      if (!wrapper.isDependencyTreeStatic()) throw new OutboxSetupError(handlerRequestScoped(handlerClass.name));
      if (!wrapper.instance) continue;
      const name = handlerClass.name;
      const sameName = names.get(name);
      if (sameName && sameName !== handlerClass) throw new OutboxSetupError(handlerNameTaken(name));
      names.set(name, handlerClass);
      for (const eventClass of events) {
        const type = eventTypeOf(eventClass);
        const route = routes.get(type) ?? { eventClass, handlers: [] };
        if (route.eventClass !== eventClass)
          throw new OutboxSetupError(eventTypeTaken(type, route.eventClass.name, eventClass.name));
        if (!route.handlers.some((handler) => handler.name === name)) {
          const ordered = orderedByDefault || isOrderedHandler(handlerClass);
          route.handlers.push({ name, instance: wrapper.instance as IEventHandler<object>, ordered });
        }
        routes.set(type, route);
      }
    }
    return routes;
  }
}

/** The class of a handler instance (or prototype) carrying @EventsHandler metadata, if it is one. */
function handlerClassOf(instanceOrPrototype: unknown): Function | undefined {
  if (!instanceOrPrototype || typeof instanceOrPrototype !== 'object') return undefined;
  const candidate = (instanceOrPrototype as { constructor?: unknown }).constructor;
  if (typeof candidate !== 'function') return undefined;
  const events = Reflect.getMetadata(EVENTS_HANDLER_METADATA, candidate) as Function[] | undefined;
  return events?.length ? candidate : undefined;
}
