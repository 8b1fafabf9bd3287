/**
 * Debian's Chromium driven by playwright-core, for the browser tests and the
 * screenshot script. playwright-core brings no browser of its own (and
 * `npx playwright install` would try to download one): the system's
 * /usr/bin/chromium is used, and its absence is an error, not a skip, so a
 * machine without it cannot pass the browser tests by running none.
 */
import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM_PATH = '/usr/bin/chromium';

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

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM_PATH)) {
    throw new Error(
      `Chromium is missing (${CHROMIUM_PATH}): the browser tests need it. ` +
        'Run .ci/run, which installs it, or: ' +
        'apt-get update && apt-get install -y --no-install-recommends chromium',
    );
  }
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, timeout: 30_000 });
}
