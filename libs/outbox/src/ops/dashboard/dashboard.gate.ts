import type { ServerResponse } from 'node:http';
import {
  ForbiddenException,
  Inject,
  Injectable,
  type CanActivate,
  type ExecutionContext,
  type Type,
} from '@nestjs/common';
import { ModuleRef } from '@nestjs/core';
import { lastValueFrom, isObservable } from 'rxjs';
import { dashboardRefused } from '../../outbox.messages.js';
import type { DashboardRequest, ResolvedDashboardOptions } from './dashboard.options.js';

/** Token of the resolved dashboard options. */
export const DASHBOARD_OPTIONS = Symbol('nest-outbox:dashboard-options');

/**
 * Guards every route of the dashboard — the page, its actions and Bull Board — with the app's
 * `authorize` function or guard. Anything but a plain `true` is a refusal: 403, nothing shown.
 */
@Injectable()
export class DashboardGate implements CanActivate {
  constructor(
    @Inject(DASHBOARD_OPTIONS) private readonly options: ResolvedDashboardOptions,
    private readonly moduleRef: ModuleRef,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const http = context.switchToHttp();
    const { guard, authorize } = this.options;
    let allowed: unknown;
    if (guard) {
      const instance = typeof guard === 'function' ? this.moduleRef.get(guard as Type<CanActivate>) : guard;
      const answer = instance.canActivate(context);
      allowed = isObservable(answer) ? await lastValueFrom(answer) : await answer;
    } else {
      allowed = await authorize!(http.getRequest<DashboardRequest>(), http.getResponse<ServerResponse>());
    }
    if (allowed !== true) throw new ForbiddenException(dashboardRefused());
    return true;
  }
}
