import { Inject, Module, type DynamicModule, type OnModuleInit, type Provider, type Type } from '@nestjs/common';
import { HttpAdapterHost } from '@nestjs/core';
import type { CanActivate } from '@nestjs/common';
import { OutboxSetupError } from '../../outbox.errors.js';
import { dashboardNeedsExpress } from '../../outbox.messages.js';
import { dashboardController } from './dashboard.controller.js';
import { DASHBOARD_OPTIONS, DashboardGate } from './dashboard.gate.js';
import { DashboardHandler } from './dashboard.handler.js';
import { resolveDashboardOptions, type OutboxDashboardOptions } from './dashboard.options.js';

/**
 * The outbox dashboard, mounted at the path the app chooses: an outbox page (counts, dead letters
 * with their payloads and Retry / Discard per message and per handler, held keys with Skip) and
 * Bull Board for every consuming service's queue. It does not mount without `authorize` or
 * `guard`, and every request it answers passes that first. Needs @nestjs/platform-express.
 */
@Module({})
export class OutboxDashboardModule implements OnModuleInit {
  constructor(@Inject(HttpAdapterHost) private readonly host: HttpAdapterHost) {}

  static forRoot(options: OutboxDashboardOptions): DynamicModule {
    const resolved = resolveDashboardOptions(options);
    const guardClass = typeof resolved.guard === 'function' ? [resolved.guard as Type<CanActivate>] : [];
    const providers: Provider[] = [
      { provide: DASHBOARD_OPTIONS, useValue: resolved },
      DashboardGate,
      DashboardHandler,
      ...guardClass,
    ];
    return {
      module: OutboxDashboardModule,
      imports: options.imports ?? [],
      controllers: [dashboardController(resolved.path)],
      providers,
    };
  }

  onModuleInit(): void {
    // An application context (no HTTP server) has nothing to mount on; any other platform is refused.
    const type = this.host.httpAdapter?.getType();
    if (type !== undefined && type !== 'express') throw new OutboxSetupError(dashboardNeedsExpress(type));
  }
}
