import { Module, type DynamicModule, type Provider } from '@nestjs/common';
import { DiscoveryModule } from '@nestjs/core';
import { SchedulerRegistry } from '@nestjs/schedule';
import { OutboxCapture } from './capture/outbox.capture.js';
import { OutboxRowFactory } from './capture/outbox-row.factory.js';
import { OutboxService } from './capture/outbox.service.js';
import { PendingMessages } from './capture/pending-messages.js';
import { HandlerExplorer } from './consume/handler.explorer.js';
import { OutboxDeadLetters } from './ops/outbox-dead-letters.js';
import { OutboxMonitor } from './ops/outbox.monitor.js';
import { OutboxRetention } from './ops/outbox-retention.js';
import type {
  OutboxModuleAsyncOptions,
  OutboxModuleOptions,
  OutboxOptionsFactory,
  ResolvedOutboxOptions,
} from './options/outbox-options.interface.js';
import { resolveOutboxOptions } from './options/resolve-options.js';
import { OutboxOptionsError } from './outbox.errors.js';
import { asyncOptionsWithoutSource } from './outbox.messages.js';
import { OutboxRunner } from './outbox.runner.js';
import { registrationsOf } from './consume/service.registration.js';
import {
  OUTBOX_LOCAL_HANDLERS,
  OUTBOX_OPTIONS,
  OUTBOX_QUEUE,
  OUTBOX_RAW_OPTIONS,
  OUTBOX_ROW_FACTORY,
  OUTBOX_SCHEDULER,
} from './outbox.tokens.js';
import { CommitSignal } from './routing/commit.signal.js';
import { OutboxQueues, lazyOwnQueue } from './routing/outbox-queues.js';
import { SubscriptionRegistry } from './routing/subscription.registry.js';
import { OutboxOrdering } from './ops/outbox-ordering.js';
import { OutboxReplay } from './ops/outbox-replay.js';
import { OutboxSubscriptions } from './ops/outbox-subscriptions.js';
import { OutboxGauges } from './telemetry/outbox.gauges.js';
import { OutboxMetrics } from './telemetry/outbox.metrics.js';
import { OutboxTracing } from './telemetry/outbox.tracing.js';
import { ProcessCounters } from './telemetry/process-counters.js';

/**
 * The transactional outbox for a NestJS + MikroORM application. Import once, in the root module;
 * it is global. MikroOrmModule must be imported too, with `outboxEntities()` in its entities.
 */
@Module({})
export class OutboxModule {
  static forRoot(options: OutboxModuleOptions): DynamicModule {
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
    if (!factoryClass) throw new OutboxOptionsError(asyncOptionsWithoutSource());
    const fromFactory: Provider = {
      provide: OUTBOX_RAW_OPTIONS,
      useFactory: (factory: OutboxOptionsFactory) => factory.createOutboxOptions(),
      inject: [factoryClass],
    };
    return options.useClass
      ? [resolve, fromFactory, { provide: options.useClass, useClass: options.useClass }]
      : [resolve, fromFactory];
  }

  private static build(optionProviders: Provider[], imports: DynamicModule['imports'] = []): DynamicModule {
    return {
      module: OutboxModule,
      global: true,
      // Not ScheduleModule.forRoot(): it would switch on every @Cron and @Interval of the host app.
      imports: [...imports, DiscoveryModule],
      providers: [
        ...optionProviders,
        CommitSignal,
        HandlerExplorer,
        OutboxCapture,
        PendingMessages,
        OutboxService,
        OutboxMonitor,
        OutboxDeadLetters,
        OutboxRetention,
        OutboxReplay,
        OutboxOrdering,
        OutboxSubscriptions,
        OutboxRunner,
        ProcessCounters,
        OutboxMetrics,
        OutboxTracing,
        OutboxGauges,
        OutboxQueues,
        SubscriptionRegistry,
        { provide: OUTBOX_QUEUE, useFactory: lazyOwnQueue, inject: [OutboxQueues] },
        {
          // The host's registry when it imported ScheduleModule (the outbox's intervals show up
          // there), else one of our own: only SchedulerRegistry is used, never its explorer.
          provide: OUTBOX_SCHEDULER,
          useFactory: (hostRegistry?: SchedulerRegistry) => hostRegistry ?? new SchedulerRegistry(),
          inject: [{ token: SchedulerRegistry, optional: true }],
        },
        {
          provide: OUTBOX_LOCAL_HANDLERS,
          useFactory: (explorer: HandlerExplorer, options: ResolvedOutboxOptions) => () =>
            registrationsOf(explorer.explore(options.worker.ordered)),
          inject: [HandlerExplorer, OUTBOX_OPTIONS],
        },
        {
          provide: OUTBOX_ROW_FACTORY,
          useFactory: (options: ResolvedOutboxOptions, tracing: OutboxTracing) =>
            new OutboxRowFactory(options.maxPayloadBytes, tracing),
          inject: [OUTBOX_OPTIONS, OutboxTracing],
        },
      ],
      exports: [
        OUTBOX_QUEUE,
        OutboxService,
        OutboxMonitor,
        OutboxDeadLetters,
        OutboxRetention,
        OutboxReplay,
        OutboxOrdering,
        OutboxSubscriptions,
        // For the library's own optional entry points (nest-outbox/health, nest-outbox/dashboard):
        // the options and every service's queue. Not in the public barrel.
        OUTBOX_OPTIONS,
        OutboxQueues,
      ],
    };
  }
}
