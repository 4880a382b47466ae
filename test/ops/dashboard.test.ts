import type { IncomingMessage } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from '@jest/globals';
import { Injectable, Module, type CanActivate, type ExecutionContext } from '@nestjs/common';
import { OutboxDeadLetters, OutboxOptionsError } from 'nest-outbox';
import { OutboxDashboardModule, type DashboardRequest } from 'nest-outbox/dashboard';
import { freshDatabase } from '../support/database.js';
import { removePrefix, uniquePrefix } from '../support/redis.js';
import { waitUntil } from '../support/wait.js';
import { ParcelShipped, broken, prepareOpsDatabase, startOpsApp, type OpsApp } from './support/ops-app.js';

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
      imports: [
        OutboxDashboardModule.forRoot({ path: '/outbox', guard: ApiKeyGuard, imports: [KeysModule], bullBoard: false }),
      ],
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

  it('lets a Nest guard class decide instead, built with the modules given in imports', async () => {
    expect((await fetch(`${keyed.url}/outbox`)).status).toBe(403);
    expect((await fetch(`${keyed.url}/outbox`, { headers: { 'x-api-key': 'k-2' } })).status).toBe(403);
    const allowed = await fetch(`${keyed.url}/outbox`, { headers: { 'x-api-key': 'k-1' } });
    expect(allowed.status).toBe(200);
    expect(await allowed.text()).toContain('<h2>This service');
    expect((await fetch(`${keyed.url}/outbox/queues`, { headers: { 'x-api-key': 'k-1' } })).status).toBe(404);
  });
});
