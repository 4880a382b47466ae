import type { IncomingMessage } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { EntityManager } from '@mikro-orm/postgresql';
import { Injectable, Module, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { EventsHandler, type IEventHandler } from '@nestjs/cqrs';
import {
  OutboxDeadLetters,
  OutboxEvent,
  OutboxOptionsError,
  OutboxOrdered,
  OutboxOrdering,
  currentMessage,
} from 'nest-outbox';
import { OutboxDashboardModule, type DashboardRequest } from 'nest-outbox/dashboard';
import { freshDatabase } from '../support/database.js';
import { removePrefix, uniquePrefix } from '../support/redis.js';
import { waitUntil } from '../support/wait.js';
import {
  CountShipment,
  NotifyCarrier,
  ParcelShipped,
  broken,
  prepareOpsDatabase,
  startOpsApp,
  type OpsApp,
} from './support/ops-app.js';

const SECRET = 'let-me-in';
const NASTY = '<script>alert("x")</script>';

/** A guard class the app's own module provides what it needs: the dashboard resolves it through `imports`. */
@Injectable()
class Keys {
  readonly valid = new Set(['k-1']);
}

@Module({ providers: [Keys], exports: [Keys] })
class KeysModule {}

@Injectable()
class ApiKeyGuard implements CanActivate {
  constructor(private readonly keys: Keys) {}
  canActivate(context: ExecutionContext): boolean {
    return this.keys.valid.has(String(context.switchToHttp().getRequest<IncomingMessage>().headers['x-api-key']));
  }
}

@OutboxEvent('ops.parcel-tracked')
class ParcelTracked {
  constructor(readonly where: string) {}
}

/** Handles one parcel's tracking events in order; fails on a checkpoint named "broken". */
@EventsHandler(ParcelTracked)
@OutboxOrdered()
class RecordTrack implements IEventHandler<ParcelTracked> {
  constructor(private readonly em: EntityManager) {}
  async handle(event: ParcelTracked): Promise<void> {
    if (event.where === 'broken') throw new Error('scanner offline');
    await this.em.execute('insert into effect (message_id, handler) values (?, ?)', [
      currentMessage()!.headers.messageId,
      'RecordTrack',
    ]);
  }
}

describe('the outbox dashboard (nest-outbox/dashboard) over HTTP', () => {
  const prefix = uniquePrefix('dashboard');
  let app: OpsApp;
  let keyed: OpsApp;
  let databaseUrl: string;
  const asked: DashboardRequest[] = [];
  const authorised = { 'x-secret': SECRET };

  const get = (path: string, headers: Record<string, string> = authorised) => fetch(`${app.url}${path}`, { headers });
  /** The page as the operator's browser gets it: its body, and the form token from the cookie it sets. */
  async function page(path = '/ops/outbox'): Promise<{ body: string; cookie: string; csrf: string }> {
    const response = await get(path);
    const cookie = response.headers.get('set-cookie')!.split(';')[0];
    return { body: await response.text(), cookie, csrf: cookie.split('=')[1] };
  }
  const act = (form: Record<string, string>, headers: Record<string, string>) =>
    fetch(`${app.url}/ops/outbox/actions`, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded', ...authorised, ...headers },
      body: new URLSearchParams(form).toString(),
    });
  const effects = async (id: string) =>
    Object.fromEntries(
      (
        await app.orm.em
          .getConnection()
          .execute('select handler, count(*)::int as n from effect where message_id = ? group by handler', [id])
      ).map((row: any) => [row.handler, row.n]),
    );
  async function deadLetter(note: string, failing: string[]): Promise<string> {
    for (const handler of failing) broken.add(handler);
    const [id] = await app.publish(new ParcelShipped(`p-${note}`, note));
    await waitUntil(`dead letter ${id}`, async () => (await app.app.get(OutboxDeadLetters).get(id)) !== undefined);
    broken.clear();
    return id;
  }

  beforeAll(async () => {
    databaseUrl = await freshDatabase('ops_dashboard');
    await prepareOpsDatabase(databaseUrl);
    app = await startOpsApp({
      databaseUrl,
      outbox: { prefix },
      handlers: [CountShipment, NotifyCarrier, RecordTrack],
      imports: [
        OutboxDashboardModule.forRoot({
          path: '/ops/outbox',
          authorize: async (request) => {
            asked.push(request);
            return request.headers['x-secret'] === SECRET;
          },
        }),
      ],
    });
    keyed = await startOpsApp({
      databaseUrl,
      outbox: { prefix, worker: { enabled: false }, relay: { enabled: false } },
      imports: [OutboxDashboardModule.forRoot({ path: '/outbox', guard: ApiKeyGuard, imports: [KeysModule] })],
      globalPrefix: 'api',
    });
  });

  beforeEach(() => {
    broken.clear();
    asked.length = 0;
  });

  afterAll(async () => {
    await keyed?.close();
    await app?.close();
    await removePrefix(prefix);
  });

  it('refuses to mount without an authorize function or a guard, or at a path that is not one', () => {
    expect(() => OutboxDashboardModule.forRoot({ path: '/outbox' })).toThrow(OutboxOptionsError);
    expect(() => OutboxDashboardModule.forRoot({ path: '/outbox' })).toThrow(
      /needs `authorize: \(request, response\) => boolean \| Promise<boolean>` or `guard`/,
    );
    expect(() => OutboxDashboardModule.forRoot({ path: '/outbox', guard: {} as never })).toThrow(OutboxOptionsError);
    expect(() => OutboxDashboardModule.forRoot({ path: 'outbox"><', authorize: () => true })).toThrow(
      /option "path" must be a URL path/,
    );
  });

  it('answers every route with 403 and nothing of the outbox when authorize says no', async () => {
    const id = await deadLetter('hidden', ['NotifyCarrier']);
    const routes = [
      '/ops/outbox',
      '/ops/outbox/',
      `/ops/outbox?message=${id}`,
      '/ops/outbox/assets/dashboard.js',
      '/ops/outbox/queues',
      '/ops/outbox/queues/api/queues',
      `/ops/outbox/queues/api/queues/shipping/${id}`,
    ];
    for (const route of routes) {
      const response = await get(route, { 'x-secret': 'wrong' });
      expect([route, response.status]).toEqual([route, 403]);
      const body = await response.text();
      expect(body).toBe('{"message":"Not allowed to see the outbox dashboard.","error":"Forbidden","statusCode":403}');
    }
    const forged = await act({ action: 'discard', service: 'shipping', message: id }, { 'x-secret': 'wrong' });
    expect(forged.status).toBe(403);
    expect(await app.app.get(OutboxDeadLetters).get(id)).toBeDefined();
    expect(asked.length).toBe(routes.length + 1);
    expect(asked[0].url).toBe('/ops/outbox');
  });

  it('shows a dead letter to whom may see it: type, handler, error, attempts and the payload, escaped', async () => {
    const id = await deadLetter(NASTY, ['NotifyCarrier']);
    const response = await get('/ops/outbox');
    expect(response.status).toBe(200);
    expect(response.headers.get('content-security-policy')).toContain("script-src 'self'");
    expect(response.headers.get('cache-control')).toBe('no-store');
    const body = await response.text();
    const article = body.slice(body.indexOf(`data-message-id="${id}"`));
    expect(article).toContain('ops.parcel-shipped');
    expect(article).toContain('NotifyCarrier');
    expect(article).toContain('NotifyCarrier: &lt;carrier&gt; API unavailable');
    expect(article).toContain('&lt;script&gt;alert(\\&quot;x\\&quot;)&lt;/script&gt;');
    expect(body).not.toContain(NASTY);
    expect(body).not.toContain('<carrier>');
    expect(body).toMatch(/<section class="consumer" data-service="shipping">/);
  });

  it('refuses a retry without the page token, with a wrong one, or from another site; leaves the dead letter', async () => {
    const id = await deadLetter('forged', ['NotifyCarrier']);
    const { cookie, csrf } = await page();
    const form = { action: 'retry', service: 'shipping', message: id };
    const attempts: Array<{ form: Record<string, string>; headers: Record<string, string> }> = [
      { form, headers: {} },
      { form: { ...form, csrf }, headers: {} },
      { form: { ...form, csrf: 'f'.repeat(64) }, headers: { cookie } },
      { form: { ...form, csrf }, headers: { cookie, 'sec-fetch-site': 'cross-site' } },
    ];
    for (const attempt of attempts) expect((await act(attempt.form, attempt.headers)).status).toBe(403);
    expect(await app.app.get(OutboxDeadLetters).get(id)).toBeDefined();
  });

  it('retries one failed handler from its button: only that handler runs again, and the page says so', async () => {
    const id = await deadLetter('retry-one', ['NotifyCarrier']);
    const { cookie, csrf } = await page();
    const response = await act(
      { csrf, action: 'retry', service: 'shipping', message: id, handler: 'NotifyCarrier' },
      { cookie, 'sec-fetch-site': 'same-origin' },
    );
    expect(response.status).toBe(303);
    const next = response.headers.get('location')!;
    expect(next).toBe(`/ops/outbox?done=retry&service=shipping&message=${id}&handler=NotifyCarrier`);
    await waitUntil('the retried handler to run', async () => (await effects(id)).NotifyCarrier === 1);
    expect(await effects(id)).toEqual({ CountShipment: 1, NotifyCarrier: 1 });
    const { body } = await page(next);
    expect(body).toContain(`Retried handler NotifyCarrier of message ${id} in shipping.`);
    await waitUntil('the page to show it handled', async () =>
      (await page(next)).body.includes('data-state="completed"'),
    );
  });

  it('discards a dead letter for good from its button', async () => {
    const id = await deadLetter('discard', ['NotifyCarrier', 'CountShipment']);
    const { cookie, csrf } = await page();
    const response = await act({ csrf, action: 'discard', service: 'shipping', message: id }, { cookie });
    expect(response.status).toBe(303);
    expect(await app.app.get(OutboxDeadLetters).get(id)).toBeUndefined();
    expect((await page()).body).not.toContain(`data-message-id="${id}"`);
  });

  it('answers a retry of what is no longer a dead letter with the reason, not an error page', async () => {
    const { cookie, csrf } = await page();
    const gone = '01900000-0000-7000-8000-000000000000';
    const response = await act({ csrf, action: 'retry', service: 'shipping', message: gone }, { cookie });
    expect(response.status).toBe(409);
    expect(await response.text()).toContain(`class="notice bad"`);
    const unknown = await act({ csrf, action: 'retry', service: 'nobody', message: gone }, { cookie });
    expect(await unknown.text()).toContain('No consuming service named nobody is registered.');
  });

  it('shows a key an ordered handler is held on, and skips the message holding it from its button', async () => {
    const first = await app.publishKeyed(new ParcelTracked('broken'), 'parcel-9');
    const second = await app.publishKeyed(new ParcelTracked('depot'), 'parcel-9');
    const ordering = app.app.get(OutboxOrdering);
    // The first failed on its only attempt (a dead letter); the second waits behind it, parked.
    await waitUntil('the key to be held, its next message parked', async () => {
      const [held] = await ordering.heldKeys();
      return held?.parked === 1 && (await app.app.get(OutboxDeadLetters).get(first)) !== undefined;
    });
    const { body, cookie, csrf } = await page();
    const held = body.slice(body.indexOf('<section class="held">'));
    expect(held).toContain('<code>parcel-9</code>');
    expect(held).toMatch(/place 1 not handled since [^<]+: not arrived yet, or a dead letter/);
    expect(held).toContain('<button type="submit" class="discard">Skip</button>');
    expect(body.slice(body.indexOf(`data-message-id="${first}"`))).toContain('scanner offline');

    const response = await act(
      { csrf, action: 'skip', handler: 'RecordTrack', source: 'shipping', key: 'parcel-9' },
      { cookie },
    );
    expect(response.status).toBe(303);
    await waitUntil('the parked message to run', async () => (await effects(second)).RecordTrack === 1);
    expect(await ordering.heldKeys()).toEqual([]);
    expect((await page(response.headers.get('location')!)).body).toContain(
      'Skipped the held message of key parcel-9 (shipping) for RecordTrack.',
    );
  });

  it('serves Bull Board read-only with every consuming service, behind the same authorisation', async () => {
    const queues = await get('/ops/outbox/queues/api/queues');
    expect(queues.status).toBe(200);
    const { queues: listed } = (await queues.json()) as { queues: Array<{ name: string; readOnlyMode: boolean }> };
    expect(listed.map((queue) => [queue.name, queue.readOnlyMode])).toEqual([['shipping', true]]);
    const ui = await get('/ops/outbox/queues');
    expect(await ui.text()).toContain('<base href="/ops/outbox/queues/" />');
    const write = await fetch(`${app.url}/ops/outbox/queues/api/queues/shipping/retry/failed`, {
      method: 'PUT',
      headers: authorised,
    });
    expect(write.status).toBe(405);
  });

  it('lets a Nest guard class decide instead, built with the modules given in imports; under a global prefix', async () => {
    const key = { 'x-api-key': 'k-1' };
    expect((await fetch(`${keyed.url}/api/outbox`)).status).toBe(403);
    expect((await fetch(`${keyed.url}/api/outbox`, { headers: { 'x-api-key': 'k-2' } })).status).toBe(403);
    const allowed = await fetch(`${keyed.url}/api/outbox/`, { headers: key });
    expect(allowed.status).toBe(200);
    const body = await allowed.text();
    expect(body).toContain('<h2>This service');
    // Links, forms and Bull Board's base follow the path the app really serves, prefix included.
    expect(body).toContain('href="/api/outbox/assets/dashboard.css"');
    expect(body).toContain('href="/api/outbox/queues"');
    const board = await fetch(`${keyed.url}/api/outbox/queues`, { headers: key });
    expect(await board.text()).toContain('<base href="/api/outbox/queues/" />');
    const api = await fetch(`${keyed.url}/api/outbox/queues/api/queues`, { headers: key });
    expect(api.status).toBe(200);
    expect((await fetch(`${keyed.url}/api/outbox/queues/api/queues`)).status).toBe(403);
  });
});
