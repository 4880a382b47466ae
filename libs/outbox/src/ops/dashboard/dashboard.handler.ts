import type { ServerResponse } from 'node:http';
import { Inject, Injectable } from '@nestjs/common';
import type { ResolvedOutboxOptions } from '../../options/outbox-options.interface.js';
import { dashboardBadRequest } from '../../outbox.messages.js';
import { OUTBOX_OPTIONS } from '../../outbox.tokens.js';
import { OutboxQueues } from '../../routing/outbox-queues.js';
import { errorText } from '../../util/error-text.js';
import { OutboxDeadLetters } from '../outbox-dead-letters.js';
import { OutboxOrdering } from '../outbox-ordering.js';
import { OutboxSubscriptions } from '../outbox-subscriptions.js';
import { OutboxMonitor } from '../outbox.monitor.js';
import { BullBoardMount } from './bull-board.mount.js';
import { parseAction, performAction, type DashboardAction } from './dashboard.actions.js';
import { DASHBOARD_CSS, DASHBOARD_JS } from './dashboard.assets.js';
import { csrfToken, forgeryReason } from './dashboard.csrf.js';
import { readDashboard, type DashboardSources } from './dashboard.data.js';
import { DASHBOARD_OPTIONS } from './dashboard.gate.js';
import type { DashboardRequest, ResolvedDashboardOptions } from './dashboard.options.js';
import { renderPage, type Notice } from './dashboard.page.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Headers of every page the dashboard renders itself: nothing cached, nothing framed, only its own script. */
const PAGE_HEADERS: Record<string, string> = {
  'cache-control': 'no-store',
  'content-security-policy':
    "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; form-action 'self'; " +
    "frame-ancestors 'none'; base-uri 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'same-origin',
};

/** What the dashboard's routes do; the controller only maps URLs to these, behind the guard. */
@Injectable()
export class DashboardHandler {
  private readonly sources: DashboardSources;
  private readonly board: BullBoardMount | undefined;

  constructor(
    @Inject(DASHBOARD_OPTIONS) private readonly options: ResolvedDashboardOptions,
    @Inject(OUTBOX_OPTIONS) outbox: ResolvedOutboxOptions,
    monitor: OutboxMonitor,
    deadLetters: OutboxDeadLetters,
    ordering: OutboxOrdering,
    subscriptions: OutboxSubscriptions,
    queues: OutboxQueues,
  ) {
    this.sources = { service: outbox.service, monitor, deadLetters, ordering, subscriptions };
    this.board = options.bullBoard.enabled
      ? new BullBoardMount(queues, subscriptions, outbox.service, options.bullBoard.readOnly)
      : undefined;
  }

  async page(request: DashboardRequest, response: ServerResponse): Promise<void> {
    const url = requestUrl(request);
    const mount = url.pathname.replace(/\/+$/, '');
    const { notice, traceId } = noticeFrom(url.searchParams);
    await this.render(request, response, mount, 200, notice, traceId);
  }

  async act(request: DashboardRequest, response: ServerResponse): Promise<void> {
    const url = requestUrl(request);
    const mount = url.pathname.replace(/\/actions\/?$/, '');
    const form = await formOf(request);
    const forged = forgeryReason(request, form.csrf);
    if (forged) return plain(response, 403, dashboardBadRequest(forged));
    const action = parseAction(form);
    if (typeof action === 'string') return plain(response, 400, dashboardBadRequest(action));
    const outcome = await performAction(this.sources, action);
    if (!outcome.ok) {
      const traceId = action.kind === 'skip' ? undefined : action.messageId;
      return this.render(request, response, mount, 409, { ok: false, text: outcome.text }, traceId);
    }
    // Post/redirect/get: a reload shows the page again instead of repeating the action.
    response.statusCode = 303;
    response.setHeader('location', `${mount}?${doneQuery(action)}`);
    response.end();
  }

  asset(response: ServerResponse, name: 'css' | 'js'): void {
    response.statusCode = 200;
    response.setHeader('content-type', name === 'css' ? 'text/css; charset=utf-8' : 'text/javascript; charset=utf-8');
    response.setHeader('cache-control', 'no-cache');
    response.setHeader('x-content-type-options', 'nosniff');
    response.end(name === 'css' ? DASHBOARD_CSS : DASHBOARD_JS);
  }

  async queues(request: DashboardRequest, response: ServerResponse): Promise<void> {
    if (!this.board) return plain(response, 404, 'Bull Board is switched off (bullBoard: false).');
    const method = request.method ?? 'GET';
    if (method !== 'GET' && method !== 'HEAD') {
      if (this.options.bullBoard.readOnly) return plain(response, 405, 'Bull Board is read-only here.');
      const site = request.headers['sec-fetch-site'];
      if (site !== undefined && site !== 'same-origin') return plain(response, 403, dashboardBadRequest('cross-site'));
    }
    const url = requestUrl(request);
    const at = url.pathname.toLowerCase().indexOf(`${this.options.path.toLowerCase()}/queues`);
    const base = url.pathname.slice(0, at + this.options.path.length + '/queues'.length);
    const rest = url.pathname.slice(base.length) || '/';
    response.setHeader('cache-control', 'no-store');
    if (!(await this.board.handle(request, response, base, rest + url.search))) plain(response, 404, 'Not found.');
  }

  private async render(
    request: DashboardRequest,
    response: ServerResponse,
    mount: string,
    status: number,
    notice: Notice | undefined,
    traceId: string | undefined,
  ): Promise<void> {
    const csrf = csrfToken(request, response, mount);
    let html: string;
    try {
      const view = await readDashboard(this.sources, this.options.deadLettersPerService, traceId);
      html = renderPage(view, { mount, csrf, bullBoard: this.board !== undefined, notice });
    } catch (error) {
      html = renderPage(null, { mount, csrf, bullBoard: this.board !== undefined, notice }, errorText(error));
      status = 503;
    }
    response.statusCode = status;
    for (const [name, value] of Object.entries(PAGE_HEADERS)) response.setHeader(name, value);
    response.setHeader('content-type', 'text/html; charset=utf-8');
    response.end(html);
  }
}

function requestUrl(request: DashboardRequest): URL {
  return new URL(request.originalUrl ?? request.url ?? '/', 'http://dashboard.invalid');
}

/** The outcome of a redirected action, rebuilt from fixed sentences (the query only fills in names). */
function noticeFrom(query: URLSearchParams): { notice?: Notice; traceId?: string } {
  const message = query.get('message') ?? undefined;
  if (message !== undefined && !UUID.test(message)) {
    return { notice: { ok: false, text: `Not a message id: ${message.slice(0, 100)}` } };
  }
  const done = query.get('done');
  const handler = query.get('handler');
  const service = query.get('service');
  let text: string | undefined;
  if ((done === 'retry' || done === 'discard') && message && service) {
    text =
      `${done === 'retry' ? 'Retried' : 'Discarded'} ${handler ? `handler ${handler} of message` : 'message'} ` +
      `${message} in ${service}.`;
  } else if (done === 'skip') {
    text = `Skipped the held message of key ${query.get('key')} (${query.get('source')}) for ${handler}.`;
  }
  return { notice: text ? { ok: true, text } : undefined, traceId: message };
}

function doneQuery(action: DashboardAction): string {
  const fields: Record<string, string> =
    action.kind === 'skip'
      ? { done: 'skip', handler: action.handler, source: action.source, key: action.key }
      : {
          done: action.kind,
          service: action.service,
          message: action.messageId,
          ...(action.handler ? { handler: action.handler } : {}),
        };
  return new URLSearchParams(fields).toString();
}

const FORM_LIMIT = 16 * 1024;

/** The posted form: as the app's body parser left it, or read here when the app has none. */
async function formOf(request: DashboardRequest): Promise<Record<string, unknown>> {
  if (typeof request.body === 'object' && request.body !== null) return request.body as Record<string, unknown>;
  if (request.readableEnded) return {};
  let text = '';
  for await (const chunk of request) {
    text += String(chunk);
    if (text.length > FORM_LIMIT) return {};
  }
  return Object.fromEntries(new URLSearchParams(text));
}

function plain(response: ServerResponse, status: number, text: string): void {
  response.statusCode = status;
  response.setHeader('content-type', 'text/plain; charset=utf-8');
  response.setHeader('cache-control', 'no-store');
  response.end(text);
}
