/**
 * The live dashboard in a real browser against a real `helo server`: a
 * plain TCP client shows up in the connection count and goes away, a
 * payload shows up in the recent records as text (never as markup), the
 * page fits a phone screen, and a lost server is reported.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../../support/browser.js';
import { RawClient } from '../helpers/raw-client.js';
import { spawnWebServer, type WebServer } from '../../support/web-server.js';

const PAGE_TIMEOUT_MS = 10_000;
const HOSTILE_PAYLOAD = '<img src=x onerror=alert(1)>';

describe('dashboard in Chromium', () => {
  let browser: Browser;
  let web: WebServer;
  let context: BrowserContext;
  let page: Page;
  const dialogs: string[] = [];

  before(async () => {
    browser = await launchChromium();
    web = await spawnWebServer();
    context = await browser.newContext({ viewport: { width: 1100, height: 720 } });
    page = await context.newPage();
    page.setDefaultTimeout(PAGE_TIMEOUT_MS);
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    await page.goto(`${web.origin}/#dashboard`);
    await page.locator('#live-state', { hasText: 'live' }).waitFor();
  });

  after(async () => {
    await context?.close();
    await browser?.close();
    await web?.server.stop();
  });

  const openTcp = (): Promise<string | null> =>
    page.locator('#conn-table tr[data-transport="tcp"] td.open').textContent();

  async function waitForOpenTcp(count: number): Promise<void> {
    await page.waitForFunction(
      (expected) =>
        document.querySelector('#conn-table tr[data-transport="tcp"] td.open')?.textContent ===
        expected,
      String(count),
    );
  }

  it('counts a plain TCP client while it is connected', async () => {
    assert.equal(await openTcp(), '0');
    const client = await RawClient.open(web.tcpPort);
    try {
      client.write('HELO watcher\n');
      await client.until(() => client.text.includes('100 OK\r\n'), 5_000, '100 OK');
      await waitForOpenTcp(1);
      assert.equal(await page.locator('#mode').textContent(), 'event-loop');
    } finally {
      client.close();
    }
    await waitForOpenTcp(0);
  });

  it('shows a stored payload in the recent records as text, never as markup', async () => {
    const client = await RawClient.open(web.tcpPort);
    try {
      client.write(`HELO mallory\nDATA ${HOSTILE_PAYLOAD}\n`);
      await client.until(() => client.text.includes('300 DRCV\r\n'), 5_000, '300 DRCV');
    } finally {
      client.close();
    }
    const row = page.locator('#recent tr', { hasText: 'mallory' });
    await row.waitFor();
    assert.equal(await row.locator('td.preview').textContent(), HOSTILE_PAYLOAD);
    assert.equal(await row.locator('td.size').textContent(), `${HOSTILE_PAYLOAD.length} B`);
    assert.equal(await page.locator('img').count(), 0, 'no element was made from the payload');
    assert.deepEqual(dialogs, []);
    assert.notEqual(await page.locator('#stored').textContent(), '0');
    // The chart and the histogram were drawn from the traffic.
    assert.ok((await page.locator('#rate-chart svg polygon').count()) > 0);
    assert.ok((await page.locator('#latency-chart svg rect').count()) > 0);
  });

  it('fits a 375 x 667 phone screen without horizontal scrolling', async () => {
    await page.setViewportSize({ width: 375, height: 667 });
    try {
      await page.waitForTimeout(1_200); // one more snapshot, drawn at the new width
      assert.ok((await page.evaluate(() => document.documentElement.scrollWidth)) <= 375);
    } finally {
      await page.setViewportSize({ width: 1100, height: 720 });
    }
  });

  it('closes its /events connection when the client view is shown', async () => {
    const ended = page.waitForEvent('requestfailed', {
      predicate: (request) => new URL(request.url()).pathname === '/events',
    });
    await page.goto(`${web.origin}/#client`);
    await ended;
    await page.goto(`${web.origin}/#dashboard`);
    await page.locator('#live-state', { hasText: 'live' }).waitFor();
  });

  it('says "disconnected — retrying" when the server goes away', async () => {
    await web.server.stop();
    await page.locator('#live-state', { hasText: 'disconnected — retrying' }).waitFor();
  });
});
