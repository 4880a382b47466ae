import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CanActivate, ModuleMetadata, Type } from '@nestjs/common';
import { OutboxOptionsError } from '../../outbox.errors.js';
import { dashboardPathInvalid, dashboardUnprotected, invalidOption } from '../../outbox.messages.js';

/** The request as the dashboard's `authorize` gets it: Node's, with what express and the app's middleware added. */
export type DashboardRequest = IncomingMessage & { originalUrl?: string; body?: unknown; [extra: string]: unknown };

export interface OutboxDashboardOptions {
  /**
   * Where the dashboard answers, e.g. `/outbox` (the app's global prefix, if any, comes before it).
   * The outbox page is there, Bull Board at `<path>/queues`.
   */
  path: string;
  /**
   * Who may see the dashboard: every request to it (page, actions, Bull Board and its API) is let
   * in only when this returns `true`; otherwise the answer is 403 and nothing of the outbox is
   * shown. Throw an HttpException (say, UnauthorizedException after setting `WWW-Authenticate` on
   * the response) to answer with it instead. Either this or `guard` is required.
   */
  authorize?: (request: DashboardRequest, response: ServerResponse) => boolean | Promise<boolean>;
  /** A Nest guard instead of `authorize`: an instance, or a class resolved in this module (see `imports`). */
  guard?: CanActivate | Type<CanActivate>;
  /** Modules the guard class needs to be constructed. */
  imports?: ModuleMetadata['imports'];
  /**
   * Bull Board for the queues of every consuming service, at `<path>/queues`; `false` leaves it out.
   * Read-only by default: retry dead letters on the outbox page, which resets their attempts and keeps
   * handlers that already succeeded from running again — Bull Board's own retry does neither.
   */
  bullBoard?: boolean | { readOnly?: boolean };
  /** Dead letters listed per consuming service, newest first. Default 50, at most 1000. */
  deadLettersPerService?: number;
}

export interface ResolvedDashboardOptions {
  path: string;
  authorize?: OutboxDashboardOptions['authorize'];
  guard?: OutboxDashboardOptions['guard'];
  bullBoard: { enabled: boolean; readOnly: boolean };
  deadLettersPerService: number;
}

const PATH = /^(\/[A-Za-z0-9._-]+)+$/;

/** Checks the options at the import line: a dashboard without an authorisation never mounts. */
export function resolveDashboardOptions(options: OutboxDashboardOptions): ResolvedDashboardOptions {
  if (typeof options !== 'object' || options === null) throw new OutboxOptionsError(dashboardUnprotected());
  const path = typeof options.path === 'string' ? options.path.replace(/\/+$/, '') : options.path;
  if (typeof path !== 'string' || !PATH.test(path)) throw new OutboxOptionsError(dashboardPathInvalid(options.path));
  const { authorize, guard } = options;
  if (typeof authorize !== 'function' && !isGuard(guard)) throw new OutboxOptionsError(dashboardUnprotected());
  if (authorize !== undefined && typeof authorize !== 'function') {
    throw new OutboxOptionsError(invalidOption('authorize', 'a function', authorize));
  }
  const limit = options.deadLettersPerService ?? 50;
  if (!Number.isInteger(limit) || limit < 1 || limit > 1000) {
    throw new OutboxOptionsError(invalidOption('deadLettersPerService', 'an integer from 1 to 1000', limit));
  }
  const board = options.bullBoard ?? true;
  return {
    path,
    authorize,
    guard,
    bullBoard: {
      enabled: board !== false,
      readOnly: typeof board === 'object' && board !== null ? board.readOnly !== false : true,
    },
    deadLettersPerService: limit,
  };
}

function isGuard(guard: unknown): guard is CanActivate | Type<CanActivate> {
  if (typeof guard === 'function') return typeof (guard.prototype as Partial<CanActivate>)?.canActivate === 'function';
  return typeof (guard as Partial<CanActivate> | undefined)?.canActivate === 'function';
}
