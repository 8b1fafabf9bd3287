/** What `npm start` runs, for tests that must start the server the same way. */
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { REPO_ROOT } from '../../support/server-process.js';

/**
 * The `helo server` flags of package.json's `start` script, with its fixed
 * ports (7778) made 0 so that tests can run side by side.
 */
export async function npmStartFlags(): Promise<string[]> {
  const pkg = JSON.parse(await readFile(join(REPO_ROOT, 'package.json'), 'utf8')) as {
    scripts: { start: string };
  };
  const words = pkg.scripts.start.split(/\s+/);
  assert.deepEqual(words.slice(0, 3), ['node', 'bin/helo', 'server']);
  const flags = words.slice(3);
  return flags.map((word, i) => (flags[i - 1]?.endsWith('-port') ? '0' : word));
}
