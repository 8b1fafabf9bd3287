/**
 * `npm run screenshots`: the README's pictures of the web client and the
 * dashboard, taken from the real page. Starts a real server (memory store,
 * free ports), runs the lab session in the page, keeps some TCP clients
 * busy so the dashboard has something to show, and writes
 * docs/images/web-client.png and docs/images/dashboard.png.
 *
 * Needs Debian's Chromium at /usr/bin/chromium (`.ci/run` installs it) and
 * a build (`npm run build`). Takes about 45 seconds, most of it traffic.
 */
import { mkdirSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Page } from 'playwright-core';
import { launchChromium } from '../support/browser.js';
import { spawnWebServer } from '../support/web-server.js';

const IMAGES_DIR = fileURLToPath(new URL('../../docs/images/', import.meta.url));
const VIEWPORT = { width: 1100, height: 720 };
const DASHBOARD_VIEWPORT = { width: 1100, height: 1000 };
/** The dashboard is taken this long into the background traffic, while it still runs. */
const DASHBOARD_AFTER_MS = 40_000;
const TRAFFIC_MS = DASHBOARD_AFTER_MS + 5_000;

const NAMES = ['bob', 'carol', 'dave', 'erin'];
const PAYLOADS = [
  'Hello world',
  'temperature=21.5',
  'lab 3: sockets ✓',
  'GET /index.html is not a command here',
  '<img src=x onerror=alert(1)>',
  'the quick brown fox jumps over the lazy dog, again and again and again',
];

/** One whole TCP session: HELO, a few payloads, sometimes a bad command, QUIT. */
function tcpSession(port: number, n: number): Promise<void> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    const lines = [`HELO ${NAMES[n % NAMES.length]}`];
    for (let i = 0; i < 1 + (n % 3); i += 1)
      lines.push(`DATA ${PAYLOADS[(n + i) % PAYLOADS.length]}`);
    if (n % 7 === 0) lines.push('USER');
    lines.push('QUIT');
    socket.on('error', () => resolve());
    socket.on('close', () => resolve());
    socket.resume();
    socket.end(`${lines.join('\n')}\n`);
  });
}

/** Sessions at a rate that rises and falls, so the chart is not a flat line. */
async function backgroundTraffic(port: number, durationMs: number): Promise<number> {
  const start = Date.now();
  let sessions = 0;
  while (Date.now() - start < durationMs) {
    const phase = (Date.now() - start) / 12_000;
    const perTick = Math.round(4 + 3 * Math.sin(phase * 2 * Math.PI));
    const batch = [];
    for (let i = 0; i < perTick; i += 1) batch.push(tcpSession(port, sessions++));
    await Promise.all(batch);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return sessions;
}

/** Idle TCP clients that stay connected, to show in "open now". */
async function idleClients(port: number, count: number): Promise<Socket[]> {
  const sockets = [];
  for (let i = 0; i < count; i += 1) {
    const socket = connect({ port, host: '127.0.0.1' });
    socket.on('error', () => undefined);
    socket.resume();
    socket.write(`HELO student${i + 1}\n`);
    sockets.push(socket);
  }
  return sockets;
}

async function labSession(page: Page): Promise<void> {
  await page.click('#connect');
  await page.locator('#helo-name').fill('alice');
  await page.keyboard.press('Enter');
  await page.locator('#transcript .line', { hasText: 'S: 100 OK' }).waitFor();
  await page.locator('#data-payload').fill('Hello world');
  await page.keyboard.press('Enter');
  await page.locator('#transcript .line', { hasText: 'S: 300 DRCV' }).waitFor();
  await page.locator('#command-line').fill('USER');
  await page.keyboard.press('Enter');
  await page.locator('#transcript .line', { hasText: 'S: 400 BCMD' }).waitFor();
  await page.click('#quit');
  await page.locator('#transcript .line', { hasText: 'closed the connection' }).waitFor();
  await page.locator('#command-line').blur();
}

async function main(): Promise<void> {
  mkdirSync(IMAGES_DIR, { recursive: true });
  const web = await spawnWebServer(['--store', 'memory:', '--log-level', 'warn']);
  const browser = await launchChromium();
  const idle: Socket[] = [];
  try {
    idle.push(...(await idleClients(web.tcpPort, 3)));
    const trafficStart = Date.now();
    const traffic = backgroundTraffic(web.tcpPort, TRAFFIC_MS);

    const context = await browser.newContext({ viewport: VIEWPORT, colorScheme: 'light' });
    const page = await context.newPage();
    page.setDefaultTimeout(15_000);
    await page.goto(`${web.origin}/#client`);
    await labSession(page);
    const clientPng = `${IMAGES_DIR}web-client.png`;
    await page.screenshot({ path: clientPng });
    process.stdout.write(`wrote ${clientPng}\n`);

    // A second page keeps a WebSocket session open, to show next to TCP.
    const wsPage = await context.newPage();
    await wsPage.goto(`${web.origin}/#client`);
    await wsPage.click('#connect');
    await wsPage.locator('#transcript .line', { hasText: 'connected' }).first().waitFor();

    await page.waitForTimeout(
      Math.max(0, DASHBOARD_AFTER_MS - 2_500 - (Date.now() - trafficStart)),
    );
    await page.setViewportSize(DASHBOARD_VIEWPORT);
    await page.goto(`${web.origin}/#dashboard`);
    await page.locator('#live-state', { hasText: 'live' }).waitFor();
    await page.waitForTimeout(1_500); // a second snapshot, drawn at the final layout
    const dashboardPng = `${IMAGES_DIR}dashboard.png`;
    await page.screenshot({ path: dashboardPng });
    const sessions = await traffic;
    process.stdout.write(`wrote ${dashboardPng} (${sessions} background sessions in all)\n`);
    await context.close();
  } finally {
    for (const socket of idle) socket.destroy();
    await browser.close();
    await web.server.stop();
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`screenshots: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
