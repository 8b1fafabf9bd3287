/**
 * The HTTP access token kept out of the command line (docs/SECURITY.md):
 * any local user can read a process's arguments (`ps`, /proc/PID/cmdline),
 * so the token can come from a file (`--http-token-file`) or the
 * environment (`HELO_HTTP_TOKEN`); `--http-token` still works, with a
 * warning.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { httpRequest } from '../helpers/http-client.js';
import { delay } from '../helpers/raw-client.js';
import { assertFailed, runHelo } from '../helpers/run-cli.js';
import type { SpawnServerOptions } from '../../support/server-process.js';
import { spawnWebServer } from '../../support/web-server.js';

const TOKEN = 'file-token-0123456789abcdef';
const VISIBLE_WARNING = /--http-token on the command line is visible to other local users/;

/** Starts a server with an HTTP port; checks the token gates /metrics and stays out of argv. */
async function checkTokenGates(args: string[], options: SpawnServerOptions = {}): Promise<string> {
  const { server, httpPort } = await spawnWebServer(['--store', 'memory:', ...args], options);
  try {
    assert.equal((await httpRequest(httpPort, '/metrics')).status, 401);
    const authorized = await httpRequest(httpPort, '/metrics', {
      headers: { authorization: `Bearer ${TOKEN}` },
    });
    assert.equal(authorized.status, 200);
    assert.equal((await httpRequest(httpPort, '/healthz')).status, 200);
    const cmdlinePath = `/proc/${server.child.pid}/cmdline`;
    if (existsSync(cmdlinePath)) {
      const cmdline = readFileSync(cmdlinePath, 'utf8');
      assert.match(cmdline, /server/);
      assert.ok(!cmdline.includes(TOKEN), `the token is in ${cmdlinePath}`);
    }
    await delay(100); // let the start-up logs arrive
    return server.stderr();
  } finally {
    assert.equal(await server.stop(), 0);
  }
}

describe('the HTTP token out of the command line', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'helo-token-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('reads the first line of --http-token-file, trimmed', async () => {
    const path = join(dir, 'token');
    await writeFile(path, `  ${TOKEN}  \nsecond line ignored\n`, { mode: 0o600 });
    const stderr = await checkTokenGates(['--http-token-file', path]);
    assert.doesNotMatch(stderr, VISIBLE_WARNING);
  });

  it('reads HELO_HTTP_TOKEN', async () => {
    const stderr = await checkTokenGates([], { env: { HELO_HTTP_TOKEN: TOKEN } });
    assert.doesNotMatch(stderr, VISIBLE_WARNING);
  });

  it('reads HELO_HTTP_TOKEN_FILE', async () => {
    const path = join(dir, 'token-env');
    await writeFile(path, `${TOKEN}\n`, { mode: 0o600 });
    await checkTokenGates([], { env: { HELO_HTTP_TOKEN_FILE: path } });
  });

  it('still takes --http-token, with a one-line warning that ps shows it', async () => {
    const { server, httpPort } = await spawnWebServer([
      '--store',
      'memory:',
      '--http-token',
      TOKEN,
    ]);
    try {
      assert.equal((await httpRequest(httpPort, '/metrics')).status, 401);
      await delay(100);
      const warnings = server
        .stderr()
        .split('\n')
        .filter((line) => VISIBLE_WARNING.test(line));
      assert.equal(warnings.length, 1, server.stderr());
      assert.match(warnings[0]!, /HELO_HTTP_TOKEN or --http-token-file/);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });

  it('refuses an unreadable token file in one line, exit 2', async () => {
    const missing = join(dir, 'missing');
    const result = await runHelo(['server', '--port', '0', '--http-token-file', missing]);
    assertFailed(result, 2, `helo server: --http-token-file: cannot read ${missing} (ENOENT)`);
  });

  it('refuses a token file whose first line is empty, exit 2', async () => {
    const path = join(dir, 'empty');
    await writeFile(path, `\n${TOKEN}\n`);
    const result = await runHelo(['server', '--port', '0', '--http-token-file', path]);
    assertFailed(result, 2, /--http-token-file: the first line of .* is empty/);
  });

  it('refuses --http-token with --http-token-file, exit 2', async () => {
    const path = join(dir, 'both');
    await writeFile(path, `${TOKEN}\n`);
    const result = await runHelo([
      'server',
      '--port',
      '0',
      '--http-token-file',
      path,
      '--http-token',
      TOKEN,
    ]);
    assertFailed(result, 2, 'helo server: give --http-token or --http-token-file, not both');
  });

  it('checks a token from a file like any other, without printing it', async () => {
    const path = join(dir, 'short');
    await writeFile(path, 'tiny-secret\n');
    const result = await runHelo(['server', '--port', '0', '--http-token-file', path]);
    assertFailed(result, 2, /an HTTP token is 16 to 256 characters/);
    assert.ok(!result.stderr.includes('tiny-secret'), result.stderr);
  });
});
