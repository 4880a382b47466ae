import { Injectable } from '@nestjs/common';
import { DiscoveryService } from '@nestjs/core';
import type { IEventHandler } from '@nestjs/cqrs';
import { OutboxSetupError } from '../outbox.errors.js';
import { eventTypeOf } from '../message/event-type.js';

// The metadata key @nestjs/cqrs's @EventsHandler writes (cqrs `decorators/constants`, not exported).
const EVENTS_HANDLER_METADATA = '__eventsHandler__';

export interface HandlerEntry {
  /** The handler's class name: its inbox key, so keep it stable. */
  name: string;
  instance: IEventHandler<object>;
}

export interface EventRoute {
  eventClass: Function;
  handlers: HandlerEntry[];
}

/** Finds every `@EventsHandler` provider, as the cqrs explorer does, and indexes them by stable type name. */
@Injectable()
export class HandlerExplorer {
  constructor(private readonly discovery: DiscoveryService) {}

  explore(): Map<string, EventRoute> {
    const routes = new Map<string, EventRoute>();
    const names = new Map<string, Function>();
    for (const wrapper of this.discovery.getProviders()) {
      const { metatype, instance } = wrapper;
      if (!metatype || !instance || typeof metatype !== 'function') continue;
      const events = Reflect.getMetadata(EVENTS_HANDLER_METADATA, metatype) as Function[] | undefined;
      if (!events?.length) continue;
      if (!wrapper.isDependencyTreeStatic()) {
        throw new OutboxSetupError(`Handler ${metatype.name} is request-scoped; outbox handlers run outside requests and must be singletons.`);
      }
      const name = metatype.name;
      const sameName = names.get(name);
      if (sameName && sameName !== metatype) {
        throw new OutboxSetupError(`Two handler classes are named ${name}; the name is the inbox key, so rename one of them.`);
      }
      names.set(name, metatype);
      for (const eventClass of events) {
        const type = eventTypeOf(eventClass);
        const route = routes.get(type) ?? { eventClass, handlers: [] };
        if (route.eventClass !== eventClass) {
          throw new OutboxSetupError(
            `Event classes ${route.eventClass.name} and ${eventClass.name} share the type name "${type}"; give one a distinct name with @OutboxEvent('...').`,
          );
        }
        if (!route.handlers.some((handler) => handler.name === name)) {
          route.handlers.push({ name, instance: instance as IEventHandler<object> });
        }
        routes.set(type, route);
      }
    }
    return routes;
  }
}
