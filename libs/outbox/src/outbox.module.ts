import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { ScheduleModule } from '@nestjs/schedule';
import { OutboxRowFactory } from './capture/outbox-row.factory.js';
import { OutboxService } from './capture/outbox.service.js';
import { HandlerExplorer } from './consume/handler.explorer.js';
import { OutboxLifecycle } from './outbox.lifecycle.js';
import {
  OUTBOX_OPTIONS,
  resolveOutboxOptions,
  type OutboxModuleAsyncOptions,
  type OutboxModuleOptions,
  type OutboxOptionsFactory,
  type ResolvedOutboxOptions,
} from './outbox.options.js';
import { OutboxOptionsError } from './outbox.errors.js';
import { OutboxSignals } from './outbox.signals.js';
import { OUTBOX_QUEUE, OUTBOX_ROW_FACTORY } from './outbox.tokens.js';
import { OutboxQueue, lazyQueue } from './outbox.queue.js';
import { OutboxMonitor } from './ops/outbox.monitor.js';
import { OutboxDeadLetters } from './ops/dead-letters.service.js';
import { OutboxRetention } from './ops/retention.service.js';

const OUTBOX_RAW_OPTIONS = Symbol('nest-outbox:raw-options');

/**
 * The transactional outbox for a NestJS + MikroORM application. Import once, in the root module;
 * it is global. MikroOrmModule must be imported too, with `outboxEntities()` in its entities.
 */
@Module({})
export class OutboxModule {
  static forRoot(options: OutboxModuleOptions = {}): DynamicModule {
    // Validated here as well, so a bad option fails at the import line, not later in the boot.
    const resolved = resolveOutboxOptions(options);
    return OutboxModule.build([{ provide: OUTBOX_OPTIONS, useValue: resolved }]);
  }

  static forRootAsync(options: OutboxModuleAsyncOptions): DynamicModule {
    return OutboxModule.build(OutboxModule.asyncOptionProviders(options), options.imports ?? []);
  }

  private static asyncOptionProviders(options: OutboxModuleAsyncOptions): Provider[] {
    const resolve: Provider = {
      provide: OUTBOX_OPTIONS,
      useFactory: (raw: OutboxModuleOptions) => resolveOutboxOptions(raw),
      inject: [OUTBOX_RAW_OPTIONS],
    };
    if (options.useFactory) {
      return [resolve, { provide: OUTBOX_RAW_OPTIONS, useFactory: options.useFactory, inject: options.inject ?? [] }];
    }
    const factoryClass = options.useClass ?? options.useExisting;
    if (!factoryClass) {
      throw new OutboxOptionsError('OutboxModule.forRootAsync() needs one of useFactory, useClass or useExisting.');
    }
    const fromFactory: Provider = {
      provide: OUTBOX_RAW_OPTIONS,
      useFactory: (factory: OutboxOptionsFactory) => factory.createOutboxOptions(),
      inject: [factoryClass],
    };
    return options.useClass ? [resolve, fromFactory, { provide: options.useClass, useClass: options.useClass }] : [resolve, fromFactory];
  }

  private static build(optionProviders: Provider[], imports: DynamicModule['imports'] = []): DynamicModule {
    return {
      module: OutboxModule,
      global: true,
      imports: [...imports, DiscoveryModule, ScheduleModule.forRoot()],
      providers: [
        ...optionProviders,
        OutboxSignals,
        HandlerExplorer,
        OutboxService,
        OutboxMonitor,
        OutboxDeadLetters,
        OutboxRetention,
        OutboxLifecycle,
        OutboxQueue,
        { provide: OUTBOX_QUEUE, useFactory: lazyQueue, inject: [OutboxQueue] },
        {
          provide: OUTBOX_ROW_FACTORY,
          useFactory: (options: ResolvedOutboxOptions) => new OutboxRowFactory(options.maxPayloadBytes),
          inject: [OUTBOX_OPTIONS],
        },
      ],
      exports: [OUTBOX_OPTIONS, OUTBOX_QUEUE, OutboxQueue, OutboxService, OutboxMonitor, OutboxDeadLetters, OutboxRetention, OutboxLifecycle],
    };
  }
}
