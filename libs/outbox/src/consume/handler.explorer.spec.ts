import { describe, expect, it } from '@jest/globals';
import { Injectable, Scope, type Type } from '@nestjs/common';
import { DiscoveryModule, DiscoveryService } from '@nestjs/core';
import { InstanceWrapper } from '@nestjs/core/injector/instance-wrapper.js';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import { Test } from '@nestjs/testing';
import { OutboxEvent } from '../message/event-type.js';
import { OutboxSetupError } from '../outbox.errors.js';
import { HandlerExplorer } from './handler.explorer.js';
import { OutboxOrdered } from './outbox-ordered.decorator.js';

const PLACED = 'spec.explorer.order-placed.v1';

@OutboxEvent(PLACED)
class OrderPlaced {}

/** Undecorated: its type name is its class name. */
class OrderShipped {}

@EventsHandler(OrderPlaced, OrderShipped)
class Projector implements IEventHandler<object> {
  async handle(): Promise<void> {}
}

@EventsHandler(OrderPlaced)
@OutboxOrdered()
class Invoicer implements IEventHandler<object> {
  async handle(): Promise<void> {}
}

@EventsHandler(OrderPlaced)
class Mailer implements IEventHandler<object> {
  constructor(readonly from = 'shop@example.com') {}

  async handle(): Promise<void> {}
}

/** A provider as Nest's container holds it, resolved (static scope unless said otherwise). */
function provider(fields: { metatype?: Function | null; instance?: unknown; inject?: unknown[]; scope?: Scope }) {
  return new InstanceWrapper({
    token: Symbol('provider'),
    name: 'provider',
    metatype: (fields.metatype ?? null) as Type,
    instance: fields.instance,
    inject: fields.inject as never,
    scope: fields.scope ?? Scope.DEFAULT,
    isResolved: fields.instance !== undefined,
  });
}

const classProvider = (handlerClass: new () => object, instance: object = new handlerClass()) =>
  provider({ metatype: handlerClass, instance });

function explorerOf(...providers: InstanceWrapper[]): HandlerExplorer {
  return new HandlerExplorer({ getProviders: () => providers } as unknown as DiscoveryService);
}

const handlerNames = (routes: ReturnType<HandlerExplorer['explore']>) =>
  Object.fromEntries([...routes].map(([type, route]) => [type, route.handlers.map((handler) => handler.name)]));

describe('HandlerExplorer', () => {
  it('finds class, useFactory and useValue providers by the class of their instance', () => {
    const invoicer = new Invoicer();
    const mailer = new Mailer('billing@example.com');
    const routes = explorerOf(
      classProvider(Projector),
      // useFactory: the wrapper's metatype is the factory, not the handler class.
      provider({ metatype: () => invoicer, inject: [], instance: invoicer }),
      // useValue: no metatype at all.
      provider({ instance: mailer }),
    ).explore();

    expect(handlerNames(routes)).toEqual({
      [PLACED]: ['Projector', 'Invoicer', 'Mailer'],
      OrderShipped: ['Projector'],
    });
    const placed = routes.get(PLACED)!;
    expect(placed.eventClass).toBe(OrderPlaced);
    expect(routes.get('OrderShipped')?.eventClass).toBe(OrderShipped);
    expect(placed.handlers[1].instance).toBe(invoicer);
    expect(placed.handlers[2].instance).toBe(mailer);
  });

  it('lists a class registered twice (say, by two modules) once', () => {
    const first = new Mailer();
    const routes = explorerOf(classProvider(Mailer, first), classProvider(Mailer)).explore();

    expect(routes.get(PLACED)?.handlers).toHaveLength(1);
    expect(routes.get(PLACED)?.handlers[0].instance).toBe(first);
  });

  it('ignores providers that are not event handlers, and a handler provider without an instance', () => {
    class Plain {}
    const routes = explorerOf(
      classProvider(Plain),
      provider({ instance: 'a string value' }),
      provider({ instance: null }),
      provider({ metatype: () => 42, inject: [], instance: 42 }),
      provider({ metatype: Projector }),
    ).explore();

    expect(routes.size).toBe(0);
  });

  it('refuses a request-scoped handler, which must be a singleton to run outside requests', () => {
    // Nest holds a request-scoped provider's prototype as its static instance.
    const scoped = provider({ metatype: Mailer, instance: Object.create(Mailer.prototype), scope: Scope.REQUEST });

    expect(() => explorerOf(scoped).explore()).toThrow(OutboxSetupError);
    expect(() => explorerOf(scoped).explore()).toThrow(
      'Handler Mailer is request-scoped; outbox handlers run outside requests and must be singletons.',
    );
  });

  it('refuses two handler classes with one name, since the name is the inbox key', () => {
    const named = (): new () => object => {
      @EventsHandler(OrderShipped)
      class Notifier {
        async handle(): Promise<void> {}
      }
      return Notifier;
    };

    expect(() => explorerOf(classProvider(named()), classProvider(named())).explore()).toThrow(
      new OutboxSetupError('Two handler classes are named Notifier; the name is the inbox key, so rename one of them.'),
    );
  });

  it('refuses two event classes sharing a type name', () => {
    @OutboxEvent('spec.explorer.clash.v1')
    class Charged {}
    @OutboxEvent('spec.explorer.clash.v1')
    class Refunded {}
    @EventsHandler(Charged)
    class OnCharged {
      async handle(): Promise<void> {}
    }
    @EventsHandler(Refunded)
    class OnRefunded {
      async handle(): Promise<void> {}
    }

    expect(() => explorerOf(classProvider(OnCharged), classProvider(OnRefunded)).explore()).toThrow(
      /^Event classes Charged and Refunded share the type name "spec\.explorer\.clash\.v1"/,
    );
  });

  it('makes @OutboxOrdered() handlers ordered, and every handler with orderedByDefault', () => {
    const explorer = explorerOf(classProvider(Invoicer), classProvider(Mailer));
    const ordered = (routes: ReturnType<HandlerExplorer['explore']>) =>
      routes.get(PLACED)?.handlers.map((handler) => [handler.name, handler.ordered]);

    expect(ordered(explorer.explore())).toEqual([
      ['Invoicer', true],
      ['Mailer', false],
    ]);
    expect(ordered(explorer.explore(true))).toEqual([
      ['Invoicer', true],
      ['Mailer', true],
    ]);
  });

  describe('in a Nest container', () => {
    @Injectable({ scope: Scope.REQUEST })
    class PerRequest {}

    @EventsHandler(OrderShipped)
    class NeedsRequest {
      constructor(readonly perRequest: PerRequest) {}

      async handle(): Promise<void> {}
    }

    async function exploreModule(providers: Parameters<typeof Test.createTestingModule>[0]['providers']) {
      const moduleRef = await Test.createTestingModule({
        imports: [DiscoveryModule],
        providers: [...(providers ?? []), HandlerExplorer],
      }).compile();
      try {
        return moduleRef.get(HandlerExplorer).explore();
      } finally {
        await moduleRef.close();
      }
    }

    it('finds the handlers of class, useFactory and useValue providers as Nest registers them', async () => {
      const routes = await exploreModule([
        Projector,
        { provide: 'invoicer', useFactory: () => new Invoicer() },
        { provide: 'mailer', useValue: new Mailer() },
      ]);

      expect(handlerNames(routes)).toEqual({
        [PLACED]: ['Projector', 'Invoicer', 'Mailer'],
        OrderShipped: ['Projector'],
      });
    });

    it('refuses a handler that is request-scoped, or depends on a request-scoped provider', async () => {
      await expect(exploreModule([{ provide: Invoicer, useClass: Invoicer, scope: Scope.REQUEST }])).rejects.toThrow(
        'Handler Invoicer is request-scoped',
      );
      await expect(exploreModule([PerRequest, NeedsRequest])).rejects.toThrow('Handler NeedsRequest is request-scoped');
    });
  });
});
