/**
 * The real `telnet` program, typed into through tmux, against `helo server`
 * started as `npm start` starts it (docs/PROTOCOL.md §11): a Ctrl-C in the
 * middle of a payload, then the session goes on and every reply shows.
 *
 * `telnet` is a Debian package that a fresh machine does not have, so this
 * is `npm run test:system` (CI installs it), not `npm test`; without telnet
 * or tmux the suite is skipped with a message.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openStoreForReading } from '../../src/store/open-store.js';
import { spawnServer } from '../../support/server-process.js';
import { npmStartFlags } from '../helpers/npm-start.js';

const has = (program: string): boolean => spawnSync('which', [program]).status === 0;
const missing = ['telnet', 'tmux'].filter((program) => !has(program));
const skip =
  missing.length > 0 &&
  `${missing.join(' and ')} not installed (apt-get install telnet tmux); the telnet system test is skipped`;
if (skip) console.log(skip);

/** A tmux server of our own (-L), so that nothing else's sessions are touched. */
const TMUX = ['-L', `helo-system-${process.pid}`];

function tmux(...args: string[]): string {
  return execFileSync('tmux', [...TMUX, ...args], { encoding: 'utf8' });
}

function screen(): string {
  return tmux('capture-pane', '-p', '-t', 'telnet');
}

async function untilScreen(pattern: RegExp, what: string, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!pattern.test(screen())) {
    if (Date.now() > deadline) assert.fail(`telnet never showed ${what}; screen:\n${screen()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Counts a reply's appearances on screen. */
function count(text: string): number {
  return screen()
    .split('\n')
    .filter((line) => line.trim() === text).length;
}

describe('telnet against npm start (system)', { skip }, () => {
  let tempDir = '';
  before(async () => {
    tempDir = await mkdtemp(join(tmpdir(), 'helo-telnet-'));
  });
  after(async () => {
    spawnSync('tmux', [...TMUX, 'kill-server']);
    await rm(tempDir, { recursive: true, force: true });
  });

  it('after a Ctrl-C in the middle of a payload, the session goes on and every reply shows', async () => {
    const storeUrl = `sqlite:${join(tempDir, 'telnet.db')}`;
    const server = await spawnServer(['--store', storeUrl, ...(await npmStartFlags())]);
    try {
      tmux(
        'new-session',
        '-d',
        '-s',
        'telnet',
        '-x',
        '100',
        '-y',
        '30',
        `telnet 127.0.0.1 ${server.port}`,
      );
      // Keep the last screen when telnet exits after QUIT.
      tmux('set-option', '-t', 'telnet', 'remain-on-exit', 'on');
      await untilScreen(/Escape character/, 'its banner');
      tmux('send-keys', '-t', 'telnet', 'HELO student', 'Enter');
      await untilScreen(/^100 OK$/m, '100 OK');
      tmux('send-keys', '-t', 'telnet', 'DATA half a pay');
      tmux('send-keys', '-t', 'telnet', 'C-c');
      // telnet now waits for an answer to DO TIMING-MARK; helo's WONT ends the wait.
      await new Promise((resolve) => setTimeout(resolve, 300));
      tmux('send-keys', '-t', 'telnet', 'DATA kept', 'Enter');
      await untilScreen(/^300 DRCV$/m, '300 DRCV after the Ctrl-C');
      tmux('send-keys', '-t', 'telnet', 'USER', 'Enter');
      await untilScreen(/^400 BCMD$/m, '400 BCMD');
      tmux('send-keys', '-t', 'telnet', 'quit', 'Enter');
      await untilScreen(/^200 BYE$/m, '200 BYE');
      await untilScreen(/Connection closed by foreign host/, 'the server closing');
      assert.equal(count('300 DRCV'), 1, screen());
    } finally {
      assert.equal(await server.stop(), 0);
    }
    const store = await openStoreForReading(storeUrl);
    try {
      const records = await store.read(0, 10);
      assert.deepEqual(
        records.map((record) => [record.name, record.payload.toString('latin1')]),
        [['student', 'kept']],
      );
    } finally {
      await store.close();
    }
  });
});
