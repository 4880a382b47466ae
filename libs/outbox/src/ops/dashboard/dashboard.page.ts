import type { DeadLetter } from '../dead-letter.js';
import type { HeldKey } from '../outbox-ordering.js';
import type { MessageTrace } from '../outbox.monitor.js';
import type { DashboardView, ServicePanel } from './dashboard.data.js';
import { html, type Html } from './html.js';

/** What the page says above everything else: the outcome of the last action. */
export interface Notice {
  ok: boolean;
  text: string;
}

/** Where the page lives and what its forms carry. */
export interface PageContext {
  /** The dashboard's URL path as the browser asked for it (global prefix included). */
  mount: string;
  csrf: string;
  bullBoard: boolean;
  notice?: Notice;
}

const PAYLOAD_SHOWN = 20_000;

export function renderPage(view: DashboardView | null, context: PageContext, readError?: string): string {
  const { mount } = context;
  const body = view
    ? html`${overview(view)} ${lookup(mount, view.trace)} ${view.services.map((panel) => servicePanel(panel, context))}
      ${heldKeys(view.heldKeys, view.service, context)}`
    : html`<p class="notice bad">The outbox could not be read: ${readError}</p>`;
  return html`<!doctype html>
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <title>Outbox${view ? html` · ${view.service}` : ''}</title>
        <link rel="stylesheet" href="${mount}/assets/dashboard.css" />
        <script src="${mount}/assets/dashboard.js" defer></script>
      </head>
      <body>
        <header>
          <h1>Outbox${view ? html` <span class="service">${view.service}</span>` : ''}</h1>
          <nav>
            <a href="${mount}">Refresh</a>
            ${context.bullBoard ? html`<a href="${mount}/queues">Queues (Bull Board)</a>` : ''}
          </nav>
          ${
            view
              ? html`<p class="at">Read at <time datetime="${view.at.toISOString()}">${clock(view.at)}</time></p>`
              : ''
          }
        </header>
        <main>${notice(context.notice)} ${body}</main>
      </body>
    </html>`.value;
}

function notice(shown: Notice | undefined): Html | '' {
  return shown ? html`<p class="notice ${shown.ok ? 'ok' : 'bad'}" role="status">${shown.text}</p>` : '';
}

function overview(view: DashboardView): Html {
  const { snapshot: s, backlog: b } = view;
  const figure = (label: string, value: number | string, warn = false, hint = '') =>
    html`<div class="figure${warn ? ' warn' : ''}" title="${hint}">
      <span>${label}</span><strong>${value}</strong>
    </div>`;
  return html`<section class="outbox">
    <h2>This service's outbox</h2>
    <div class="figures">
      ${figure('pending', b.pending, false, 'not yet handed to BullMQ')} ${figure('due now', b.due)}
      ${figure('oldest pending', duration(b.oldestDueMs), b.oldestDueMs > 60_000, 'the oldest due row')}
      ${figure('dispatched', s.dispatched, false, 'handed to BullMQ (retained rows)')}
      ${figure('unrouted', s.unrouted, s.unrouted > 0, 'dispatched with no subscriber; replay can deliver them')}
      ${figure('stuck', b.stuck, b.stuck > 0, 'the relay gave up enqueueing them')}
      ${figure('expired leases', b.expiredLeases, b.expiredLeases > 0, 'leased by a process that did not finish')}
      ${figure('handled here', s.handled, false, "handler runs in this service's inbox")}
    </div>
  </section>`;
}

function lookup(mount: string, trace: MessageTrace | null): Html {
  return html`<section class="lookup">
    <form method="get" action="${mount}">
      <label
        >Find a message <input name="message" placeholder="message id" value="${trace?.messageId ?? ''}" size="40"
      /></label>
      <button type="submit">Find</button>
    </form>
    ${trace ? traced(trace) : ''}
  </section>`;
}

const STATE_LABELS: Record<string, string> = {
  completed: 'handled',
  failed: 'dead letter',
  waiting: 'waiting',
  'waiting-children': 'waiting',
  prioritized: 'waiting',
  active: 'running',
  delayed: 'delayed (backoff, parked or waiting for a handler)',
  absent: 'not in this queue',
  unknown: 'not in this queue',
};

function traced(trace: MessageTrace): Html {
  const row = trace.row;
  return html`<div class="trace" data-message-id="${trace.messageId}">
    <h3>Message <code>${trace.messageId}</code></h3>
    ${
      row
        ? html`<p>
            ${row.type}, written ${clock(row.occurredAt)};
            ${
              row.dispatchedAt
                ? html`dispatched ${clock(row.dispatchedAt)} to
                  ${row.routedTo.length > 0 ? row.routedTo.join(', ') : 'no subscriber'}`
                : html`pending (${row.attempts} claim(s)${row.lastError ? html`, last error: ${row.lastError}` : ''})`
            }
          </p>`
        : html`<p>Not in this service's outbox (another service wrote it, or retention removed it).</p>`
    }
    <ul class="states">
      ${Object.entries(trace.jobs).map(
        ([service, state]) =>
          html`<li data-service="${service}" data-state="${state}">
            <b>${service}</b>: ${STATE_LABELS[state] ?? state}
          </li>`,
      )}
    </ul>
    ${trace.handledBy.length > 0 ? html`<p>Handled here by ${trace.handledBy.join(', ')}.</p>` : ''}
  </div>`;
}

function servicePanel(panel: ServicePanel, context: PageContext): Html {
  const q = panel.queue;
  const sub = panel.subscription;
  const unserved = sub?.unserved ?? [];
  return html`<section class="consumer" data-service="${panel.name}">
    <h2>${panel.name}${panel.own ? html` <small>(this service)</small>` : ''}</h2>
    <div class="figures small">
      ${(['waiting', 'active', 'delayed', 'completed'] as const).map(
        (state) => html`<div class="figure"><span>${state}</span><strong>${q[state]}</strong></div>`,
      )}
      <div class="figure${panel.deadLetterCount > 0 ? ' warn' : ''}">
        <span>dead letters</span><strong>${panel.deadLetterCount}</strong>
      </div>
    </div>
    ${
      sub
        ? html`<p class="processes">
              ${sub.live.length} live
              process(es)${
                sub.live.length > 0
                  ? html`: ${sub.live.map((p) => html`<code>${p.id}</code> (build ${p.version}) `)}`
                  : ''
              }
              · ${sub.handlers.length} handler(s)
              registered${sub.retired.length > 0 ? html` · retired: ${sub.retired.join(', ')}` : ''}
            </p>
            ${
              unserved.length > 0
                ? html`<p class="notice bad">
                    No live process has: ${unserved.map((u) => `${u.type}/${u.handler}`).join(', ')}. Their messages
                    wait (and become dead letters after worker.waitForHandlersMs).
                  </p>`
                : ''
            }`
        : html`<p class="processes">No handlers registered (a producer only).</p>`
    }
    ${
      panel.deadLetters.length > 0
        ? html`<h3>
              Dead
              letters${
                panel.deadLetterCount > panel.deadLetters.length
                  ? html` <small>(newest ${panel.deadLetters.length} of ${panel.deadLetterCount})</small>`
                  : ''
              }
            </h3>
            ${panel.deadLetters.map((letter) => deadLetter(letter, context))}`
        : ''
    }
  </section>`;
}

function deadLetter(letter: DeadLetter, context: PageContext): Html {
  const id = letter.messageId;
  const failing = [...letter.handlers.map((h) => h.name), ...letter.missing];
  const all = failing.length > 0 ? `all failed handlers (${failing.join(', ')})` : 'the message';
  return html`<article class="dead-letter" data-message-id="${id}" data-type="${letter.type}">
    <header>
      <h4><code>${letter.type}</code> <span class="reason">${letter.reason}</span></h4>
      <div class="actions">
        ${action(context, 'retry', letter.service, id, undefined, `Retry message ${id} for ${all}?`)}
        ${action(context, 'discard', letter.service, id, undefined, `Discard message ${id} for good?`)}
      </div>
    </header>
    <dl>
      <dt>message</dt>
      <dd><code>${id}</code></dd>
      <dt>from</dt>
      <dd>${letter.source ?? 'unknown'}</dd>
      ${
        letter.key
          ? html`<dt>key</dt>
              <dd><code>${letter.key}</code></dd>`
          : ''
      }
      <dt>attempts</dt>
      <dd>${letter.attempts}</dd>
      <dt>failed</dt>
      <dd>
        ${clock(letter.firstFailedAt)}${
          clock(letter.lastFailedAt) !== clock(letter.firstFailedAt) ? html` … ${clock(letter.lastFailedAt)}` : ''
        }
      </dd>
    </dl>
    ${
      letter.handlers.length + letter.missing.length > 0
        ? html`<table class="handlers">
            <thead>
              <tr>
                <th>handler</th>
                <th>error</th>
                <th>attempts</th>
                <th></th>
              </tr>
            </thead>
            <tbody>
              ${letter.handlers.map(
                (h) =>
                  html`<tr data-handler="${h.name}">
                    <td><code>${h.name}</code></td>
                    <td class="error">${h.error}</td>
                    <td>${h.attempts}</td>
                    <td class="actions">${handlerActions(context, letter, h.name)}</td>
                  </tr>`,
              )}
              ${letter.missing.map(
                (name) =>
                  html`<tr data-handler="${name}">
                    <td><code>${name}</code></td>
                    <td class="error">no live process has this handler</td>
                    <td>–</td>
                    <td class="actions">${handlerActions(context, letter, name)}</td>
                  </tr>`,
              )}
            </tbody>
          </table>`
        : html`<p class="error">${letter.error}</p>`
    }
    ${letter.discarded.length > 0 ? html`<p>Discarded handlers: ${letter.discarded.join(', ')}</p>` : ''}
    <details>
      <summary>Payload</summary>
      <pre>${pretty(letter.payload)}</pre>
    </details>
    ${
      letter.headers
        ? html`<details>
            <summary>Headers</summary>
            <pre>${JSON.stringify(letter.headers, null, 2)}</pre>
          </details>`
        : ''
    }
  </article>`;
}

function handlerActions(context: PageContext, letter: DeadLetter, handler: string): Html {
  const id = letter.messageId;
  return html`${action(context, 'retry', letter.service, id, handler, `Retry ${handler} on message ${id}?`)}
  ${action(context, 'discard', letter.service, id, handler, `Discard ${handler} for ${id}?`)}`;
}

function action(
  context: PageContext,
  kind: 'retry' | 'discard',
  service: string,
  messageId: string,
  handler: string | undefined,
  confirm: string,
): Html {
  const label = kind === 'retry' ? 'Retry' : 'Discard';
  return html`<form method="post" action="${context.mount}/actions" data-confirm="${confirm}">
    <input type="hidden" name="csrf" value="${context.csrf}" />
    <input type="hidden" name="action" value="${kind}" />
    <input type="hidden" name="service" value="${service}" />
    <input type="hidden" name="message" value="${messageId}" />
    ${handler ? html`<input type="hidden" name="handler" value="${handler}" />` : ''}
    <button type="submit" class="${kind}">${label}</button>
  </form>`;
}

function heldKeys(keys: HeldKey[], service: string, context: PageContext): Html {
  if (keys.length === 0) return html``;
  return html`<section class="held">
    <h2>Held keys <small>(ordered handlers of ${service})</small></h2>
    <table>
      <thead>
        <tr>
          <th>handler</th>
          <th>source</th>
          <th>key</th>
          <th>handled up to</th>
          <th>held by</th>
          <th>parked</th>
          <th></th>
        </tr>
      </thead>
      <tbody>
        ${keys.map(
          (key) =>
            html`<tr>
              <td><code>${key.handler}</code></td>
              <td>${key.source}</td>
              <td><code>${key.key}</code></td>
              <td>${key.position}</td>
              <td>${heldBy(key)}</td>
              <td>${key.parked}</td>
              <td class="actions">
                <form method="post" action="${context.mount}/actions" data-confirm="${skipQuestion(key)}">
                  <input type="hidden" name="csrf" value="${context.csrf}" />
                  <input type="hidden" name="action" value="skip" />
                  <input type="hidden" name="handler" value="${key.handler}" />
                  <input type="hidden" name="source" value="${key.source}" />
                  <input type="hidden" name="key" value="${key.key}" />
                  <button type="submit" class="discard">Skip</button>
                </form>
              </td>
            </tr>`,
        )}
      </tbody>
    </table>
  </section>`;
}

function pretty(payload: string | null): string {
  if (payload === null) return '(none)';
  let text: string;
  try {
    text = JSON.stringify(JSON.parse(payload), null, 2);
  } catch {
    text = payload;
  }
  return text.length > PAYLOAD_SHOWN ? `${text.slice(0, PAYLOAD_SHOWN)}\n… (${text.length} characters)` : text;
}

function clock(at: Date): string {
  return at
    .toISOString()
    .replace('T', ' ')
    .replace(/\.\d+Z$/, ' UTC');
}

function duration(ms: number): string {
  if (ms < 1000) return ms === 0 ? '–' : `${ms} ms`;
  if (ms < 120_000) return `${Math.round(ms / 1000)} s`;
  if (ms < 7_200_000) return `${Math.round(ms / 60_000)} min`;
  return `${Math.round(ms / 3_600_000)} h`;
}

/** What holds a key: the failing message whose turn it is, or a turn not taken (not arrived, or a dead letter). */
function heldBy(key: HeldKey): Html {
  const turn = key.position + 1;
  if (key.blockedBy) {
    const { messageId, seq, since, error } = key.blockedBy;
    return html`<code>${messageId}</code> (place ${seq}) failing since ${clock(since)}:
      <span class="error">${error}</span>`;
  }
  const waiting = key.waitingSince ? ` since ${clock(key.waitingSince)}` : '';
  return html`place ${turn} not handled${waiting}: not arrived yet, or a dead letter`;
}

function skipQuestion(key: HeldKey): string {
  return `Skip place ${key.position + 1} of key ${key.key} for ${key.handler}? It will never run it.`;
}
