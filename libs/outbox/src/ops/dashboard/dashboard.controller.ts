import type { ServerResponse } from 'node:http';
import { All, Controller, Get, Post, Req, Res, UseGuards, type Type } from '@nestjs/common';
import { DashboardGate } from './dashboard.gate.js';
import { DashboardHandler } from './dashboard.handler.js';
import type { DashboardRequest } from './dashboard.options.js';

/**
 * The dashboard's routes under the path the app chose (a class made per path, since a Nest
 * controller's path is fixed when it is decorated). Every route is behind the gate; responses are
 * written directly, so nothing of the outbox goes through the app's interceptors or serialisers.
 */
export function dashboardController(path: string): Type<unknown> {
  @Controller(path)
  @UseGuards(DashboardGate)
  class OutboxDashboardController {
    constructor(private readonly handler: DashboardHandler) {}

    @Get()
    page(@Req() request: DashboardRequest, @Res() response: ServerResponse): Promise<void> {
      return this.handler.page(request, response);
    }

    @Get('assets/dashboard.css')
    css(@Res() response: ServerResponse): void {
      this.handler.asset(response, 'css');
    }

    @Get('assets/dashboard.js')
    js(@Res() response: ServerResponse): void {
      this.handler.asset(response, 'js');
    }

    @Post('actions')
    act(@Req() request: DashboardRequest, @Res() response: ServerResponse): Promise<void> {
      return this.handler.act(request, response);
    }

    @All(['queues', 'queues/*path'])
    queues(@Req() request: DashboardRequest, @Res() response: ServerResponse): Promise<void> {
      return this.handler.queues(request, response);
    }
  }
  return OutboxDashboardController;
}
