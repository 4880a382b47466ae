import { Module, type DynamicModule } from '@nestjs/common';
import { TerminusModule } from '@nestjs/terminus';
import { checkTimeout, defaultThresholds, mergeThresholds, type OutboxHealthOptions } from './health.options.js';
import { OUTBOX_HEALTH_OPTIONS, OutboxHealthIndicator } from './outbox-health.indicator.js';

/**
 * Provides `OutboxHealthIndicator` (and terminus's `HealthCheckService`, through TerminusModule)
 * to the module that imports it; `OutboxModule` must be imported in the app.
 */
@Module({})
export class OutboxHealthModule {
  static forRoot(options: OutboxHealthOptions = {}): DynamicModule {
    // Checked here too, so a bad threshold fails at the import line rather than at the first check.
    mergeThresholds(defaultThresholds(1000), options.thresholds);
    checkTimeout(options.timeoutMs);
    return {
      module: OutboxHealthModule,
      imports: [TerminusModule],
      providers: [{ provide: OUTBOX_HEALTH_OPTIONS, useValue: options }, OutboxHealthIndicator],
      exports: [OutboxHealthIndicator, TerminusModule],
    };
  }
}
