/**
 * Install anywhere (docs/DEPLOY.md): the tarball `npm pack` makes installs
 * with `npm install -g` into an empty prefix, and the `helo` it puts in
 * PREFIX/bin works from any directory: --version, and a server with an
 * SQLite store (the native module built by the install) that a client,
 * the installed one too, talks HELO to.
 *
 * Slow (about 70 s: better-sqlite3 compiles) and it asks the registry for
 * the dependencies' metadata (the cache the project's own `npm install`
 * filled holds their tarballs but not that metadata): so it is not part of
 * `npm test` but of `npm run test:pack`, which .ci/run runs after it.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { REPO_ROOT } from '../../support/server-process.js';

const version = (
  JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }
).version;

/** The environment without npm's own variables (`npm run` sets npm_config_*), nor HELO_*. */
function cleanEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(process.env).filter(
      ([name]) => !name.startsWith('npm_') && !name.startsWith('HELO_'),
    ),
  );
}

describe('npm install -g of the packed tarball', () => {
  const scratch = mkdtempSync(join(tmpdir(), 'helo-pack-'));
  const prefix = join(scratch, 'prefix');
  const elsewhere = join(scratch, 'elsewhere');
  const helo = join(prefix, 'bin', 'helo');

  before(() => {
    mkdirSync(elsewhere);
    const packStart = Date.now();
    // The build already ran (npm run test:pack builds first); --ignore-scripts skips `prepare`.
    const pack = spawnSync(
      'npm',
      ['pack', '--ignore-scripts', '--pack-destination', scratch, '--silent'],
      { cwd: REPO_ROOT, encoding: 'utf8', env: cleanEnv(), timeout: 60_000 },
    );
    assert.equal(pack.status, 0, pack.stderr);
    const tarball = join(
      scratch,
      readdirSync(scratch).find((name) => name.endsWith('.tgz'))!,
    );
    const installStart = Date.now();
    // From another directory, as a user would; `prepare` does not run for a
    // tarball (it has no sources to build: an install that ran it would fail).
    const install = spawnSync(
      'npm',
      ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball],
      { cwd: elsewhere, encoding: 'utf8', env: cleanEnv(), timeout: 300_000 },
    );
    assert.equal(install.status, 0, `npm install -g: ${install.stdout}${install.stderr}`);
    console.log(
      `# npm pack ${installStart - packStart} ms, npm install -g ${Date.now() - installStart} ms`,
    );
  });

  after(() => rmSync(scratch, { recursive: true, force: true }));

  it('puts helo on PREFIX/bin, without the devDependencies', () => {
    assert.ok(existsSync(helo), helo);
    const installed = join(prefix, 'lib', 'node_modules', 'helo');
    for (const devOnly of ['playwright-core', 'vega', 'typescript', '@sparticuz/chromium']) {
      assert.ok(!existsSync(join(installed, 'node_modules', devOnly)), `${devOnly} not installed`);
    }
    assert.ok(existsSync(join(installed, 'node_modules', 'better-sqlite3')));
  });

  it('prints the version from any directory', () => {
    const result = spawnSync(helo, ['--version'], { cwd: elsewhere, encoding: 'utf8' });
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, `${version}\n`);
  });

  it('runs a server with an SQLite store that a client talks HELO to', async () => {
    const server = spawn(
      helo,
      ['server', '--port', '0', '--store', `sqlite:${join(scratch, 'helo.db')}`],
      { cwd: elsewhere, env: cleanEnv(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    server.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    server.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const exited = once(server, 'exit');
    try {
      const deadline = Date.now() + 15_000;
      let match: RegExpExecArray | null = null;
      while ((match = /listening on tcp:\/\/127\.0\.0\.1:(\d+)/.exec(stdout)) === null) {
        assert.ok(server.exitCode === null, `server exited; stderr: ${stderr}`);
        assert.ok(Date.now() < deadline, `server did not listen; stderr: ${stderr}`);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const client = spawnSync(helo, ['client', '--port', match[1]!], {
        cwd: elsewhere,
        env: cleanEnv(),
        input: 'HELO installed\nDATA from the tarball\nQUIT\n',
        encoding: 'utf8',
        timeout: 15_000,
      });
      assert.equal(client.status, 0, client.stderr);
      assert.equal(client.stdout, '100 OK\n300 DRCV\n200 BYE\n');
      const list = spawnSync(
        helo,
        ['store', 'export', '--store', `sqlite:${join(scratch, 'helo.db')}`],
        { cwd: elsewhere, env: cleanEnv(), encoding: 'utf8', timeout: 15_000 },
      );
      assert.equal(list.status, 0, list.stderr);
      assert.match(list.stdout, /"name":"installed"/);
    } finally {
      server.kill('SIGTERM');
      const [code] = (await exited) as [number | null];
      assert.equal(code, 0, `server exit status; stderr: ${stderr}`);
    }
  });
});
