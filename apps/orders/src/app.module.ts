import { MikroOrmModule } from '@mikro-orm/nestjs';
import { Module, type DynamicModule } from '@nestjs/common';
import { OutboxModule, type OutboxModuleOptions } from 'nest-outbox';
import { MetricsModule } from '../../shared/src/metrics.module.js';
import type { ServiceTelemetry } from '../../shared/src/telemetry.js';
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
}

/** The example service: orders over HTTP, a read model, notifications and loyalty points. */
@Module({})
export class OrdersAppModule {
  static register(options: OrdersAppOptions = {}): DynamicModule {
    return {
      module: OrdersAppModule,
      imports: [
        MikroOrmModule.forRoot({ ...ordersOrmConfig(options.databaseUrl), registerRequestContext: true }),
        OutboxModule.forRoot({ service: 'orders', ...options.outbox }),
        ...(options.telemetry ? [MetricsModule.register(options.telemetry)] : []),
      ],
      controllers: [OrdersController],
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
