import { MikroOrmModule } from '@mikro-orm/nestjs';
import { Module, type DynamicModule } from '@nestjs/common';
import { OutboxModule, type OutboxModuleOptions } from 'nest-outbox';
import { MetricsModule } from '../../shared/src/metrics.module.js';
import type { ServiceTelemetry } from '../../shared/src/telemetry.js';
import { OutboxHealthModule } from 'nest-outbox/health';
import { HealthController } from '../../shared/src/health.controller.js';
import { billingOrmConfig } from './database/orm.config.js';
import { InvoiceLifecycle } from './invoices/invoice-lifecycle.handler.js';

export interface BillingAppOptions {
  databaseUrl?: string;
  /** Outbox options; the service is `billing` unless given. */
  outbox?: Partial<OutboxModuleOptions>;
  /** The OpenTelemetry SDK this process started (`startTelemetry`): the app then serves `GET /metrics`. */
  telemetry?: ServiceTelemetry;
}

/**
 * The second example service: it consumes the orders service's events from its own queue, keeps
 * invoices in its own database, and tells orders about them through its own outbox. GET /health.
 */
@Module({})
export class BillingAppModule {
  static register(options: BillingAppOptions = {}): DynamicModule {
    return {
      module: BillingAppModule,
      imports: [
        MikroOrmModule.forRoot({ ...billingOrmConfig(options.databaseUrl), registerRequestContext: true }),
        OutboxModule.forRoot({ service: 'billing', ...options.outbox }),
        ...(options.telemetry ? [MetricsModule.register(options.telemetry)] : []),
        OutboxHealthModule.forRoot(),
      ],
      controllers: [HealthController],
      providers: [InvoiceLifecycle],
    };
  }
}
