/**
 * Chromium driven by playwright-core, for the browser tests and the
 * screenshot script. playwright-core brings no browser of its own (and
 * `npx playwright install` would try to download one, which fails here).
 * The browser comes from the npm registry instead: `@sparticuz/chromium`
 * ships a headless Chromium inside its package and unpacks it on first use,
 * so `npm install && npm test` needs no system package. A system Chromium
 * at /usr/bin/chromium, when there is one, is used first (it starts faster
 * and is kept up to date by the distribution).
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

const SYSTEM_CHROMIUM = '/usr/bin/chromium';

// Our own flags, not the package's defaults: those turn off web security
// and site isolation, which the origin tests (docs/WEB.md) depend on.
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-quic',
  '--no-first-run',
  '--disable-component-update',
  '--disable-sync',
];

/** The Chromium executable: the system's, or the one shipped in the npm package. */
export async function chromiumPath(): Promise<string> {
  if (existsSync(SYSTEM_CHROMIUM)) return SYSTEM_CHROMIUM;
  const { default: packaged } = await import('@sparticuz/chromium');
  return packaged.executablePath();
}

export async function launchChromium(): Promise<Browser> {
  const executablePath = await chromiumPath();
  return chromium.launch({ executablePath, args: CHROMIUM_ARGS, timeout: 30_000 });
}
