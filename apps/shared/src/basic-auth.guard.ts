import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { UnauthorizedException, type CanActivate, type ExecutionContext } from '@nestjs/common';

/** Who may open the example's dashboard. */
export interface DashboardLogin {
  user: string;
  password: string;
}

/**
 * HTTP Basic authentication for the example's outbox dashboard: the browser asks for the user and
 * password once and sends them with every request. A real service would use its own login (a
 * session, an SSO proxy, …) through `authorize` or a guard the same way.
 */
export class BasicAuthGuard implements CanActivate {
  private readonly expected: Buffer;

  constructor(login: DashboardLogin) {
    this.expected = Buffer.from(`Basic ${Buffer.from(`${login.user}:${login.password}`).toString('base64')}`);
  }

  canActivate(context: ExecutionContext): boolean {
    const http = context.switchToHttp();
    const given = Buffer.from(http.getRequest<IncomingMessage>().headers.authorization ?? '');
    if (given.length === this.expected.length && timingSafeEqual(given, this.expected)) return true;
    http.getResponse<ServerResponse>().setHeader('www-authenticate', 'Basic realm="outbox dashboard", charset="UTF-8"');
    throw new UnauthorizedException();
  }
}
