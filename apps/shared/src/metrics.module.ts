import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  Controller,
  Get,
  Inject,
  Injectable,
  Module,
  Req,
  Res,
  type DynamicModule,
  type OnApplicationShutdown,
} from '@nestjs/common';
import type { ServiceTelemetry } from './telemetry.js';

const TELEMETRY = Symbol('example:telemetry');

/** Prometheus scrapes the app itself: the exporter renders what the SDK collected. */
@Controller('metrics')
class MetricsController {
  constructor(@Inject(TELEMETRY) private readonly telemetry: ServiceTelemetry) {}

  @Get()
  scrape(@Req() request: IncomingMessage, @Res() response: ServerResponse): void {
    this.telemetry.prometheus.getMetricsRequestHandler(request, response);
  }
}

@Injectable()
class TelemetryShutdown implements OnApplicationShutdown {
  constructor(@Inject(TELEMETRY) private readonly telemetry: ServiceTelemetry) {}

  /** Last: the outbox stopped in `beforeApplicationShutdown`, so its final spans are flushed here. */
  async onApplicationShutdown(): Promise<void> {
    await this.telemetry.shutdown();
  }
}

/** `GET /metrics` in Prometheus text format, and the SDK's shutdown with the app's. */
@Module({})
export class MetricsModule {
  static register(telemetry: ServiceTelemetry): DynamicModule {
    return {
      module: MetricsModule,
      controllers: [MetricsController],
      providers: [{ provide: TELEMETRY, useValue: telemetry }, TelemetryShutdown],
    };
  }
}
