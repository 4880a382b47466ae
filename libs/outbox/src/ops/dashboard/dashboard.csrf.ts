import { randomBytes, timingSafeEqual } from 'node:crypto';
import type { ServerResponse } from 'node:http';
import type { DashboardRequest } from './dashboard.options.js';

const COOKIE = 'outbox_dashboard_csrf';
const TOKEN = /^[0-9a-f]{64}$/;

/**
 * The page's anti-forgery token (double submit): a random value in an HttpOnly, SameSite=Strict
 * cookie scoped to the dashboard, repeated in every form. Another site can neither read the cookie
 * nor make the browser send it, so it cannot forge a form that matches. Needs no server state, so
 * any process behind a load balancer can check it.
 */
export function csrfToken(request: DashboardRequest, response: ServerResponse, mount: string): string {
  const existing = cookie(request, COOKIE);
  if (existing && TOKEN.test(existing)) return existing;
  const token = randomBytes(32).toString('hex');
  const secure = isHttps(request) ? '; Secure' : '';
  response.setHeader('set-cookie', `${COOKIE}=${token}; Path=${mount || '/'}; HttpOnly; SameSite=Strict${secure}`);
  return token;
}

/** Why a state-changing request is refused, or `undefined` when it came from the dashboard's own page. */
export function forgeryReason(request: DashboardRequest, formToken: unknown): string | undefined {
  // Browsers say where a request comes from; anything but this origin (or a typed-in URL) is refused.
  const site = request.headers['sec-fetch-site'];
  if (site !== undefined && site !== 'same-origin' && site !== 'none') return `a request from another site (${site})`;
  const expected = cookie(request, COOKIE);
  if (!expected || typeof formToken !== 'string' || !TOKEN.test(formToken) || !TOKEN.test(expected)) {
    return 'the form token is missing; reload the page and try again';
  }
  if (!timingSafeEqual(Buffer.from(expected), Buffer.from(formToken))) {
    return 'the form token does not match; reload the page and try again';
  }
  return undefined;
}

function cookie(request: DashboardRequest, name: string): string | undefined {
  const header = request.headers.cookie;
  if (!header) return undefined;
  for (const part of header.split(';')) {
    const at = part.indexOf('=');
    if (at > 0 && part.slice(0, at).trim() === name) return part.slice(at + 1).trim();
  }
  return undefined;
}

function isHttps(request: DashboardRequest): boolean {
  const socket = request.socket as { encrypted?: boolean } | undefined;
  return socket?.encrypted === true || request.headers['x-forwarded-proto'] === 'https';
}
