import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import type { INestApplication } from '@nestjs/common';
import { Test } from '@nestjs/testing';
import type { Browser } from 'playwright-core';
import { BillingAppModule } from '../../apps/billing/src/billing.module.js';
import { prepareBillingDatabase } from '../../apps/billing/src/database/prepare-database.js';
import { freshDatabase, withConnection } from '../support/database.js';
import { launchChromium } from '../support/browser.js';
import { migrateOrders, post, startOrdersApp, type OrdersApp } from '../support/orders-app.js';
import { REDIS_URL, removePrefix, uniquePrefix } from '../support/redis.js';
import { waitUntil } from '../support/wait.js';

const LOGIN = { user: 'operator', password: 'correct horse battery staple' };
/**
 * The README shows this screenshot. The page carries message ids, times and process ids that change
 * every run, so the committed file is rewritten only on request (UPDATE_SCREENSHOT=1); otherwise the
 * test writes its screenshot under .tmp, and the tree stays clean after `npm test`.
 */
const SCREENSHOT = process.env.UPDATE_SCREENSHOT
  ? join(process.cwd(), 'docs', 'dashboard.png')
  : join(process.cwd(), '.tmp', 'dashboard.png');

describe('the outbox dashboard of the example service, in headless Chromium', () => {
  const prefix = uniquePrefix('dashboard-browser');
  let databaseUrl: string;
  let orders: OrdersApp;
  let billing: INestApplication;
  let browser: Browser;
  const sql = (query: string) => withConnection(databaseUrl, (execute) => execute(query));

  beforeAll(async () => {
    databaseUrl = await freshDatabase('dashboard_browser');
    const billingUrl = await freshDatabase('dashboard_browser_billing');
    await Promise.all([migrateOrders(databaseUrl), prepareBillingDatabase(billingUrl)]);
    // The second example service, so the page has two consuming services to show.
    const billingModule = await Test.createTestingModule({
      imports: [
        BillingAppModule.register({ databaseUrl: billingUrl, outbox: { prefix, redis: REDIS_URL, version: '1.8.0' } }),
      ],
    }).compile();
    billing = await billingModule.createNestApplication({ logger: ['error', 'warn'] }).init();
    // One attempt, so a failing handler becomes a dead letter at once.
    orders = await startOrdersApp(
      databaseUrl,
      { prefix, redis: REDIS_URL, version: '2.3.1', worker: { attempts: 1 } },
      { dashboard: LOGIN },
    );
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await orders?.close();
    await billing?.close();
    await removePrefix(prefix);
  });

  it('refuses a visitor without the login: no page, no payload, no queues', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    for (const path of ['/outbox', '/outbox/queues', '/outbox/queues/api/queues']) {
      // Headless Chromium has nobody to ask for a login: it ends the navigation at the server's 401 challenge.
      const answer = page.waitForResponse(`${orders.url}${path}`);
      await expect(page.goto(`${orders.url}${path}`)).rejects.toThrow(/ERR_INVALID_AUTH_CREDENTIALS/);
      const refused = await answer;
      expect(refused.status()).toBe(401);
      expect(refused.headers()['www-authenticate']).toMatch(/^Basic /);
    }
    // The same requests from the browser's cookie jar, bodies read: nothing of the outbox in them.
    for (const path of ['/outbox', '/outbox/queues/api/queues']) {
      const refused = await context.request.get(`${orders.url}${path}`);
      expect(refused.status()).toBe(401);
      expect(await refused.text()).toBe('{"message":"Unauthorized","statusCode":401}');
    }
    const forged = await context.request.post(`${orders.url}/outbox/actions`, {
      form: { action: 'discard', service: 'orders', message: '00000000-0000-7000-8000-000000000000' },
    });
    expect(forged.status()).toBe(401);
    await context.close();
  });

  it('shows a dead letter to the operator, retries it on a confirmed click, then shows it handled', async () => {
    // The confirmation handler's table is gone (a bad migration, say): its handler fails, the others succeed.
    await sql('alter table notification_log rename to notification_log_away');
    const { id: orderId } = await post<{ id: string }>(`${orders.url}/orders`, {
      customerId: 'c-42',
      totalCents: 4200,
    });
    const messageId = await waitForDeadLetter(orders);

    const context = await browser.newContext({
      httpCredentials: { username: LOGIN.user, password: LOGIN.password },
      viewport: { width: 1280, height: 900 },
    });
    const page = await context.newPage();
    expect((await page.goto(`${orders.url}/outbox`))?.status()).toBe(200);
    const letter = page.locator(`article.dead-letter[data-message-id="${messageId}"]`);
    await expect(letter.locator('h4 code').textContent()).resolves.toBe('orders.order-placed.v1');
    expect(await letter.locator('tr[data-handler="SendOrderConfirmation"] td.error').textContent()).toContain(
      'notification_log',
    );
    await letter.locator('summary', { hasText: 'Payload' }).click();
    expect(await letter.locator('pre').first().textContent()).toContain(orderId);
    mkdirSync(join(process.cwd(), '.tmp'), { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(readFileSync(SCREENSHOT).subarray(1, 4).toString()).toBe('PNG');

    // The table is back; the operator retries the message and confirms.
    await sql('alter table notification_log_away rename to notification_log');
    const dialog = new Promise<string>((resolve) =>
      page.once('dialog', (prompt) => {
        resolve(prompt.message());
        void prompt.accept();
      }),
    );
    await Promise.all([page.waitForURL(/done=retry/), letter.locator('header .actions button.retry').click()]);
    expect(await dialog).toBe(`Retry message ${messageId} for all failed handlers (SendOrderConfirmation)?`);
    expect(await page.locator('.notice.ok').textContent()).toBe(`Retried message ${messageId} in orders.`);
    expect(await page.locator('section.consumer h2').allInnerTexts()).toEqual(['orders (this service)', 'billing']);

    await orders.monitor.waitUntilSettled();
    await page.reload();
    expect(await page.locator(`.trace li[data-service="orders"]`).innerText()).toBe('orders: handled');
    expect(await page.locator(`.trace li[data-service="billing"]`).innerText()).toBe('billing: handled');
    expect(await page.locator('.trace').textContent()).toContain('SendOrderConfirmation');
    expect(await page.locator('article.dead-letter').count()).toBe(0);
    const [sent] = await sql(`select count(*)::int as n from notification_log where message_id = '${messageId}'`);
    expect(sent.n).toBe(1);
    await context.close();
  });
});

/** The id of the first dead letter in the orders queue, once there is one. */
async function waitForDeadLetter(orders: OrdersApp): Promise<string> {
  let id: string | undefined;
  await waitUntil('a dead letter in the orders queue', async () => {
    const [failed] = await orders.app.get((await import('nest-outbox')).OutboxDeadLetters).list({ limit: 1 });
    id = failed?.messageId;
    return id !== undefined;
  });
  return id!;
}
