import { MikroOrmModule } from '@mikro-orm/nestjs';
import { Module, type DynamicModule } from '@nestjs/common';
import { OutboxModule, type OutboxModuleOptions } from 'nest-outbox';
import { MetricsModule } from '../../shared/src/metrics.module.js';
import type { ServiceTelemetry } from '../../shared/src/telemetry.js';
import { OutboxDashboardModule } from 'nest-outbox/dashboard';
import { OutboxHealthModule } from 'nest-outbox/health';
import { BasicAuthGuard, type DashboardLogin } from '../../shared/src/basic-auth.guard.js';
import { HealthController } from '../../shared/src/health.controller.js';
import { RecordInvoice } from './invoicing/record-invoice.handler.js';
import { AwardLoyaltyPoints } from './loyalty/award-points.handler.js';
import { ordersOrmConfig } from './database/orm.config.js';
import { SendOrderConfirmation, SendPointsStatement } from './notifications/notification.handlers.js';
import { OrdersController } from './orders/orders.controller.js';
import { OrdersService } from './orders/orders.service.js';
import { OrderSummaryProjector } from './read-model/order-summary.projector.js';

export interface OrdersAppOptions {
  databaseUrl?: string;
  /** Outbox options; the service is `orders` unless given. */
  outbox?: Partial<OutboxModuleOptions>;
  /** The OpenTelemetry SDK this process started (`startTelemetry`): the app then serves `GET /metrics`. */
  telemetry?: ServiceTelemetry;
  /** Who may open the outbox dashboard at /outbox; without it the dashboard is not mounted. */
  dashboard?: DashboardLogin;
}

/**
 * The example service: orders over HTTP, a read model, notifications and loyalty points; GET /health,
 * and the outbox dashboard at /outbox behind a login.
 */
@Module({})
export class OrdersAppModule {
  static register(options: OrdersAppOptions = {}): DynamicModule {
    return {
      module: OrdersAppModule,
      imports: [
        MikroOrmModule.forRoot({ ...ordersOrmConfig(options.databaseUrl), registerRequestContext: true }),
        OutboxModule.forRoot({ service: 'orders', ...options.outbox }),
        ...(options.telemetry ? [MetricsModule.register(options.telemetry)] : []),
        OutboxHealthModule.forRoot(),
        ...(options.dashboard
          ? [OutboxDashboardModule.forRoot({ path: '/outbox', guard: new BasicAuthGuard(options.dashboard) })]
          : []),
      ],
      controllers: [OrdersController, HealthController],
      providers: [
        OrdersService,
        OrderSummaryProjector,
        SendOrderConfirmation,
        SendPointsStatement,
        AwardLoyaltyPoints,
        RecordInvoice,
      ],
    };
  }
}
