/**
 * The web client in a real browser (Debian's Chromium through
 * playwright-core) against a real `helo server`: the lab session typed into
 * the page and found in the store, the keyboard path, errors shown in the
 * page, the Origin check seen from a foreign page, a phone-sized screen, and
 * a page that loads nothing from elsewhere.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { launchChromium } from '../../support/browser.js';
import { RawClient } from '../helpers/raw-client.js';
import { runHelo } from '../helpers/run-cli.js';
import { spawnWebServer, type WebServer } from '../../support/web-server.js';

/** Every wait in the page is bounded, so a broken page fails instead of hanging. */
const PAGE_TIMEOUT_MS = 10_000;

/** `S: 100 OK   (0.6 ms)`: a reply line with its round-trip time. */
const replyWithRtt = (reply: string): RegExp =>
  new RegExp(`^S: ${reply} {3}\\((\\d+\\.\\d) ms\\)$`);

async function transcriptLines(page: Page): Promise<string[]> {
  return page.locator('#transcript .line').allTextContents();
}

async function waitForLine(page: Page, text: string): Promise<void> {
  await page.locator('#transcript .line', { hasText: text }).first().waitFor();
}

describe('web client in Chromium', () => {
  let browser: Browser;
  let web: WebServer;
  let storeDir: string;
  let context: BrowserContext;

  before(async () => {
    browser = await launchChromium();
    storeDir = mkdtempSync(join(tmpdir(), 'helo-web-'));
    web = await spawnWebServer(['--store', `sqlite:${join(storeDir, 'helo.db')}`]);
  });

  after(async () => {
    await context?.close();
    await browser?.close();
    await web?.server.stop();
    rmSync(storeDir, { recursive: true, force: true });
  });

  async function openPage(viewport = { width: 1100, height: 720 }): Promise<Page> {
    await context?.close();
    context = await browser.newContext({ viewport });
    const page = await context.newPage();
    page.setDefaultTimeout(PAGE_TIMEOUT_MS);
    await page.goto(`${web.origin}/`);
    return page;
  }

  it('runs the lab session typed into the page, with round-trip times, and stores the payload', async () => {
    const page = await openPage();
    // Leading, inner and trailing spaces and non-ASCII text: sent as typed.
    const payload = '  Hello  wörld ✓ ';
    await page.click('#connect');
    await page.locator('#helo-name').fill('alice');
    await page.click('#helo-form button');
    await waitForLine(page, 'S: 100 OK');
    await page.locator('#data-payload').fill(payload);
    await page.click('#data-form button');
    await waitForLine(page, 'S: 300 DRCV');
    await page.click('#quit');
    await waitForLine(page, 'the server closed the connection');

    const lines = await transcriptLines(page);
    const session = lines.filter((line) => /^[CS]: /.test(line));
    assert.equal(session.length, 7, JSON.stringify(lines));
    assert.equal(session[0], 'C: HELO alice');
    assert.match(session[1]!, replyWithRtt('100 OK'));
    assert.equal(session[2], 'C: DATA');
    assert.equal(session[3], `C: ${payload}`);
    assert.match(session[4]!, replyWithRtt('300 DRCV'));
    assert.equal(session[5], 'C: QUIT');
    assert.match(session[6]!, replyWithRtt('200 BYE'));
    assert.equal(await page.locator('#client-error').isHidden(), true);
    assert.equal(await page.locator('#connect').isEnabled(), true, 'Connect is offered again');

    const exported = await runHelo([
      'store',
      'export',
      '--store',
      `sqlite:${join(storeDir, 'helo.db')}`,
    ]);
    assert.equal(exported.status, 0, exported.stderr);
    const records = exported.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { name: string | null; payloadBase64: string });
    const mine = records.filter((record) => record.name === 'alice');
    assert.equal(mine.length, 1, exported.stdout);
    assert.equal(Buffer.from(mine[0]!.payloadBase64, 'base64').toString('utf8'), payload);
  });

  it('can be used from the keyboard alone: Tab to Connect, Enter, type, Enter', async () => {
    const page = await openPage();
    for (let tabs = 0; tabs < 10; tabs += 1) {
      await page.keyboard.press('Tab');
      if (await page.evaluate(() => document.activeElement?.id === 'connect')) break;
    }
    assert.equal(await page.evaluate(() => document.activeElement?.id), 'connect');
    await page.keyboard.press('Enter');
    // Once connected, the focus moves to the name box.
    await page.waitForFunction(() => document.activeElement?.id === 'helo-name');
    await page.keyboard.type('bob');
    await page.keyboard.press('Enter');
    await waitForLine(page, 'S: 100 OK');
    await page.locator('#command-line').focus();
    await page.keyboard.type('USER');
    await page.keyboard.press('Enter');
    await waitForLine(page, 'S: 400 BCMD');
    // A bare DATA on the command line makes the next line its payload.
    await page.keyboard.type('DATA');
    await page.keyboard.press('Enter');
    await page.locator('#command-line-label', { hasText: 'Payload' }).waitFor();
    await page.keyboard.type('QUIT');
    await page.keyboard.press('Enter');
    await waitForLine(page, 'S: 300 DRCV');
    const lines = (await transcriptLines(page)).filter((line) => /^[CS]: /.test(line));
    assert.deepEqual(
      lines.map((line) => line.replace(/ {3}\(.*$/, '')),
      ['C: HELO bob', 'S: 100 OK', 'C: USER', 'S: 400 BCMD', 'C: DATA', 'C: QUIT', 'S: 300 DRCV'],
    );
    assert.match(lines.at(-1)!, replyWithRtt('300 DRCV'));
    await page.click('#disconnect');
    await waitForLine(page, 'disconnected');
  });

  it('works on a 375 x 667 phone screen without horizontal scrolling', async () => {
    const page = await openPage({ width: 375, height: 667 });
    await page.click('#connect');
    await page.locator('#helo-name').fill('a-rather-long-name-for-a-small-screen');
    await page.keyboard.press('Enter');
    await page.locator('#data-payload').fill('x'.repeat(300));
    await page.keyboard.press('Enter');
    await waitForLine(page, 'S: 300 DRCV');
    assert.ok(
      (await page.evaluate(() => document.documentElement.scrollWidth)) <= 375,
      'no horizontal scroll',
    );
    for (const id of ['connect', 'helo-name', 'data-payload', 'command-line', 'quit']) {
      const box = await page.locator(`#${id}`).boundingBox();
      assert.ok(
        box !== null && box.x >= 0 && box.x + box.width <= 375,
        `#${id} fits: ${JSON.stringify(box)}`,
      );
    }
  });

  it('loads nothing from another origin, and is served with its security headers', async () => {
    await context?.close();
    context = await browser.newContext();
    const page = await context.newPage();
    page.setDefaultTimeout(PAGE_TIMEOUT_MS);
    const requested: string[] = [];
    page.on('request', (request) => requested.push(request.url()));
    page.on('websocket', (socket) => requested.push(socket.url()));
    const response = await page.goto(`${web.origin}/`);
    assert.equal(response?.status(), 200);
    const headers = response!.headers();
    assert.equal(headers['content-type'], 'text/html; charset=utf-8');
    assert.match(headers['content-security-policy'] ?? '', /default-src 'self'/);
    assert.equal(headers['x-content-type-options'], 'nosniff');
    await page.click('#connect');
    await page.locator('#helo-name').fill('e');
    await page.keyboard.press('Enter');
    await waitForLine(page, 'S: 100 OK');
    await page.goto(`${web.origin}/#dashboard`);
    await page.waitForLoadState('networkidle');

    const host = `127.0.0.1:${web.httpPort}`;
    assert.ok(requested.includes(`${web.origin}/app.js`), JSON.stringify(requested));
    assert.ok(requested.includes(`ws://${host}/ws`), 'the WebSocket was recorded');
    const foreign = requested.filter((url) => new URL(url).host !== host);
    assert.deepEqual(foreign, []);
  });

  it('reports a reply that takes more than 10 s as a timeout, and still shows it when it comes', async () => {
    // Each reply waits 2 s on the server; the page's clock is fast-forwarded past 10 s.
    const slow = await spawnWebServer(['--store', 'memory:', '--work-ms', '2000']);
    try {
      await context?.close();
      context = await browser.newContext();
      const page = await context.newPage();
      page.setDefaultTimeout(PAGE_TIMEOUT_MS);
      await page.clock.install();
      await page.goto(`${slow.origin}/`);
      await page.click('#connect');
      await page.locator('#helo-name').fill('slowpoke');
      await page.keyboard.press('Enter');
      await page.clock.fastForward(11_000);
      await page.locator('#client-error', { hasText: 'Timeout' }).waitFor();
      assert.equal(
        await page.locator('#client-error').textContent(),
        'Timeout: no reply to "HELO slowpoke" within 10 s.',
      );
      await waitForLine(page, 'S: 100 OK');
    } finally {
      await slow.server.stop();
    }
  });

  it('says plainly when the server refuses the connection, and when it is gone', async () => {
    // HTTP connections count against --max-connections too, and idle ones
    // close after --idle-timeout (3 s here): the page's files load, then
    // their connections go and TCP clients take every place.
    const busy = await spawnWebServer([
      '--store',
      'memory:',
      '--max-connections',
      '8',
      '--idle-timeout',
      '3',
    ]);
    const holders: RawClient[] = [];
    // Holders stay busy, so that the protocol's idle timeout spares them.
    const keepBusy = setInterval(() => holders.forEach((h) => h.write('HELO\n')), 300);
    try {
      await context?.close();
      context = await browser.newContext();
      const page = await context.newPage();
      page.setDefaultTimeout(PAGE_TIMEOUT_MS);
      await page.goto(`${busy.origin}/`);
      // TCP clients take every place: the upgrade is refused (HTTP 503). The
      // page's connections may hold some at first; once they idle out (3 s),
      // holders take those too, so the page has no connection to reuse.
      const fill = async (): Promise<void> => {
        for (;;) {
          const holder = await RawClient.open(busy.tcpPort);
          holder.write('HELO\n');
          await holder.until(() => holder.text.length > 0, 5_000, 'a reply');
          if (holder.text.startsWith('503 BUSY')) return;
          holders.push(holder);
        }
      };
      await fill();
      await page.waitForTimeout(3_500);
      await fill();
      await page.click('#connect');
      const error = page.locator('#client-error');
      await error.waitFor();
      assert.match((await error.textContent()) ?? '', /Could not connect .*refused.*503/s);
      assert.equal(await page.locator('#connect').isEnabled(), true);

      // Two places: Chromium may open a spare connection next to the one it uses.
      for (const holder of holders.splice(-2)) {
        holder.write('QUIT\n');
        await holder.untilEnded();
      }
      // The server frees the slot as it closes the socket: give it a moment.
      await page.waitForTimeout(100);
      await page.click('#connect');
      await page.locator('#helo-name').fill('carol');
      await page.keyboard.press('Enter');
      await waitForLine(page, 'S: 100 OK');
      await busy.server.stop('SIGKILL');
      await page.locator('#client-error', { hasText: 'server gone' }).waitFor();
      assert.match((await error.textContent()) ?? '', /code 1006/);
    } finally {
      clearInterval(keepBusy);
      for (const holder of holders) holder.close();
      await busy.server.stop();
    }
  });
});

describe('the Origin check, seen from a page on another origin', () => {
  let browser: Browser;
  let web: WebServer;
  let foreign: Server;

  before(async () => {
    browser = await launchChromium();
    web = await spawnWebServer();
    foreign = createServer((_request, response) => {
      response.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      response.end('<!doctype html><title>elsewhere</title><p>another site</p>');
    });
    foreign.listen(0, '127.0.0.1');
    await once(foreign, 'listening');
  });

  after(async () => {
    await browser?.close();
    await web?.server.stop();
    foreign?.close();
  });

  /** Opens `/ws` from a page at `pageUrl`, sends HELO on open, and reports what happened. */
  async function tryWebSocket(
    pageUrl: string,
  ): Promise<{ opened: boolean; messages: string[]; closeCode: number | null }> {
    const context = await browser.newContext();
    try {
      const page = await context.newPage();
      page.setDefaultTimeout(PAGE_TIMEOUT_MS);
      await page.goto(pageUrl);
      return await page.evaluate(
        (url) =>
          new Promise<{ opened: boolean; messages: string[]; closeCode: number | null }>(
            (resolve) => {
              const result = {
                opened: false,
                messages: [] as string[],
                closeCode: null as number | null,
              };
              const ws = new WebSocket(url);
              ws.onopen = () => {
                result.opened = true;
                ws.send('HELO');
              };
              ws.onmessage = (event) => {
                result.messages.push(String(event.data));
                ws.close();
              };
              ws.onclose = (event) => {
                result.closeCode = event.code;
                resolve(result);
              };
            },
          ),
        `ws://127.0.0.1:${web.httpPort}/ws`,
      );
    } finally {
      await context.close();
    }
  }

  it('refuses /ws to a page served from another port', async () => {
    const port = (foreign.address() as AddressInfo).port;
    const result = await tryWebSocket(`http://127.0.0.1:${port}/`);
    assert.equal(result.opened, false);
    assert.deepEqual(result.messages, []);
    assert.equal(result.closeCode, 1006, 'the upgrade failed (HTTP 403)');
  });

  it('accepts /ws from the server’s own page (the same script, so the check above can fail)', async () => {
    const result = await tryWebSocket(`${web.origin}/`);
    assert.equal(result.opened, true);
    assert.deepEqual(result.messages, ['100 OK\r\n']);
  });
});
