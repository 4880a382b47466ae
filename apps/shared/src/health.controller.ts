import { Controller, Get } from '@nestjs/common';
import { HealthCheck, HealthCheckService } from '@nestjs/terminus';
import { OutboxHealthIndicator } from 'nest-outbox/health';

/**
 * GET /health of the example services: the outbox indicator through terminus — 200 with status
 * `ok` (or `degraded`: dead letters wait for an operator), 503 when messages are not moving.
 */
@Controller('health')
export class HealthController {
  constructor(
    private readonly health: HealthCheckService,
    private readonly outbox: OutboxHealthIndicator,
  ) {}

  @Get()
  @HealthCheck()
  check() {
    return this.health.check([() => this.outbox.isHealthy('outbox')]);
  }
}
