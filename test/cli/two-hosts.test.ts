/**
 * scripts/two-hosts.sh (`npm run demo:two-hosts`): a server and a client in
 * two network namespaces joined by a veth pair. The session crosses the
 * virtual cable, the server logs the client host's address as its peer, and
 * the namespaces (and so the cable) are gone afterwards, also when the
 * script is stopped with SIGTERM in --keep mode.
 *
 * Creating namespaces needs root and iproute2; elsewhere the test is skipped
 * with a message, as the script itself refuses with one line.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { REPO_ROOT } from '../../support/server-process.js';

const SCRIPT = join(REPO_ROOT, 'scripts', 'two-hosts.sh');

function canMakeNamespaces(): boolean {
  if (process.getuid?.() !== 0) return false;
  const probe = `helo-probe-${process.pid}`;
  if (spawnSync('ip', ['netns', 'add', probe]).status !== 0) return false;
  spawnSync('ip', ['netns', 'del', probe]);
  return true;
}

const skip =
  !canMakeNamespaces() && 'not root, or no `ip netns` here: the two-hosts test is skipped';
if (skip) console.log(skip);

function namespaces(): string {
  return spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout;
}

describe('scripts/two-hosts.sh', { skip }, () => {
  it('carries a session across the veth cable and removes both hosts', async () => {
    const run = spawn('bash', [SCRIPT], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    let out = '';
    run.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    run.stderr.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    const [code] = (await once(run, 'exit')) as [number | null];
    assert.equal(code, 0, out);
    assert.match(out, /^100 OK\n300 DRCV\n200 BYE$/m);
    assert.match(out, /"peer":"10\.77\.0\.2:\d+"/, 'the server saw the other host as its peer');
    assert.match(out, /^10\.77\.0\.0\/24 dev hc\d+/m, "the client host's one route is the cable");
    assert.match(
      out,
      /connection refused at 127\.0\.0\.1:7777/,
      "the client host's loopback is its own",
    );
    assert.doesNotMatch(namespaces(), new RegExp(`helo-(server|client)-${run.pid}\\b`));
  });

  it('keeps both hosts up with --keep until SIGTERM, then removes them', async () => {
    const run = spawn('bash', [SCRIPT, '--keep'], {
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 30_000,
    });
    let out = '';
    run.stderr.resume();
    run.stdout.setEncoding('utf8');
    while (!out.includes('stay up until you press Ctrl-C')) {
      const [chunk] = (await once(run.stdout, 'data')) as [string];
      out += chunk;
    }
    const serverNs = `helo-server-${run.pid}`;
    assert.match(namespaces(), new RegExp(`${serverNs}\\b`));
    const pids = spawnSync('ip', ['netns', 'pids', serverNs], { encoding: 'utf8' })
      .stdout.trim()
      .split('\n');
    assert.ok(pids.length > 0 && pids[0] !== '', 'the server runs inside the server host');
    run.kill('SIGTERM');
    const [code] = (await once(run, 'exit')) as [number | null];
    assert.equal(code, 0);
    assert.doesNotMatch(namespaces(), new RegExp(`helo-(server|client)-${run.pid}\\b`));
    for (const pid of pids)
      assert.equal(existsSync(`/proc/${pid}`), false, `server process ${pid} is gone`);
  });

  it('refuses with one line when not run as root', () => {
    const run = spawnSync('runuser', ['-u', 'nobody', '--', 'bash', SCRIPT], {
      encoding: 'utf8',
      timeout: 10_000,
    });
    assert.equal(run.status, 1);
    assert.equal(
      run.stderr,
      'two-hosts: needs root to create network namespaces: run it with sudo\n',
    );
    assert.equal(run.stdout, '');
  });
});
