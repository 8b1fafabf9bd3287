/**
 * `helo client` against the exercise's own kind of server (docs/GRADING.md):
 * --lockstep, --eol and --inline-data, and every server line that is not
 * the reply it waits for shown, never dropped. The servers are the small
 * one-fault servers of test/helpers/broken-servers.ts, on loopback.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { connect } from '../../src/client/client.js';
import { ClosedError } from '../../src/errors.js';
import { type BrokenServer, type Fault, startBrokenServer } from '../helpers/broken-servers.js';
import { assertOneLineError, runHelo } from '../helpers/run-cli.js';
import { HELO_BIN, REPO_ROOT } from '../../support/server-process.js';

const BOUNDED = { timeout: 20_000 };

async function withServer<T>(fault: Fault, body: (server: BrokenServer) => Promise<T>): Promise<T> {
  const server = await startBrokenServer(fault);
  try {
    return await body(server);
  } finally {
    await server.close();
  }
}

const SESSION = 'HELO\nDATA\nHello world\nUSER\nQUIT\n';

describe('helo client for classroom servers', () => {
  describe('a server that takes each recv() as one command', () => {
    it('--lockstep --inline-data completes the session', BOUNDED, () =>
      withServer('one-recv-per-command', async (server) => {
        const result = await runHelo(['client', server.address, '--lockstep', '--inline-data'], {
          input: SESSION,
        });
        assert.deepEqual(result, {
          status: 0,
          stdout: '100 OK\n300 DRCV\n400 BCMD\n200 BYE\n',
          stderr: '',
        });
      }),
    );

    it('--eol none (and lf) complete it too, one send per command', BOUNDED, () =>
      withServer('one-recv-per-command', async (server) => {
        for (const eol of ['none', 'lf']) {
          const extra = eol === 'lf' ? ['--lockstep', '--inline-data'] : [];
          const result = await runHelo(['client', server.address, '--eol', eol, ...extra], {
            input: SESSION,
          });
          assert.deepEqual(
            result,
            { status: 0, stdout: '100 OK\n300 DRCV\n400 BCMD\n200 BYE\n', stderr: '' },
            eol,
          );
        }
      }),
    );

    it('pipelined (the default), the merged commands get one reply: it says so', BOUNDED, () =>
      withServer('one-recv-per-command', async (server) => {
        const result = await runHelo(['client', server.address, '--timeout', '0.5'], {
          input: SESSION,
        });
        assert.equal(result.status, 1);
        assertOneLineError(result.stderr, /^helo client: no reply to /);
      }),
    );

    it('--eol must be crlf, lf or none', BOUNDED, async () => {
      const result = await runHelo(['client', '--eol', 'cr']);
      assert.equal(result.status, 2);
      assertOneLineError(result.stderr, /^helo client: --eol must be crlf, lf or none, got 'cr'$/);
    });
  });

  describe('server lines that are not the expected reply', () => {
    it('a description line after the last reply is shown and exits 1', BOUNDED, () =>
      withServer('describes-bad-commands', async (server) => {
        const result = await runHelo(['client', server.address], { input: 'USER\n' });
        assert.equal(result.status, 1);
        assert.equal(
          result.stdout,
          '400 BCMD\nunexpected: "\\rCommand-Description: Bad command"\n',
        );
        assertOneLineError(
          result.stderr,
          /^helo client: 127\.0\.0\.1:\d+ sent 1 unexpected line \(shown above\)$/,
        );
      }),
    );

    it(
      'in a longer session each one is shown in place, and every reply still matches',
      BOUNDED,
      () =>
        withServer('describes-bad-commands', async (server) => {
          const result = await runHelo(['client', server.address, '--lockstep'], {
            input: 'USER\nHELO\nNOOP\nQUIT\n',
          });
          assert.equal(result.status, 1);
          assert.equal(
            result.stdout,
            [
              '400 BCMD',
              'unexpected: "\\rCommand-Description: Bad command"',
              '100 OK',
              '400 BCMD',
              'unexpected: "\\rCommand-Description: Bad command"',
              '200 BYE',
              '',
            ].join('\n'),
          );
          assertOneLineError(result.stderr, /sent 2 unexpected lines/);
        }),
    );

    it('LF-only replies are replies', BOUNDED, () =>
      withServer('lf-replies', async (server) => {
        const result = await runHelo(['client', server.address], { input: SESSION });
        assert.deepEqual(result, {
          status: 0,
          stdout: '100 OK\n300 DRCV\n400 BCMD\n200 BYE\n',
          stderr: '',
        });
      }),
    );

    it('a reply before the payload line is not taken as the DATA reply (library)', BOUNDED, () =>
      withServer('answers-data-early', async (server) => {
        // By default the connection ends: later replies could not be matched.
        const strict = await connect({ port: server.port, timeoutMs: 2000 });
        const early = strict.send('DATA');
        await assert.rejects(early, (error: unknown) => {
          assert.ok(error instanceof ClosedError);
          assert.match(error.message, /answered too early: "300 DRCV" came before DATA's payload/);
          return true;
        });
        await strict.close();
        // Tolerant (as helo client runs it): shown as unexpected, DATA still waits.
        const tolerant = await connect({
          port: server.port,
          timeoutMs: 300,
          tolerateStrayLines: true,
        });
        const seen: string[] = [];
        tolerant.on('unexpected', (what) => seen.push(what));
        const data = tolerant.send('DATA');
        data.catch(() => undefined);
        await new Promise((resolve) => setTimeout(resolve, 200));
        assert.deepEqual(seen, ['"300 DRCV" came before DATA\'s payload line was sent']);
        assert.equal(tolerant.state, 'payload');
        await assert.rejects(
          tolerant.send('Hello world'),
          /^TimeoutError: no reply to DATA within 300 ms$/,
        );
        await tolerant.close();
      }),
    );

    it('a timeout after a bare DATA names DATA, and who closed the connection', BOUNDED, () =>
      withServer('never-answers', async (server) => {
        const result = await runHelo(['client', server.address, '--timeout', '0.3'], {
          input: 'DATA\nHello world\n',
        });
        assert.equal(result.status, 1);
        assert.equal(result.stdout, '');
        assertOneLineError(result.stderr, /^helo client: no reply to DATA within 300 ms$/);
      }),
    );
  });

  describe('at a terminal (tmux)', () => {
    const tmux = promisify(execFile);
    const socketName = `helo-classroom-${process.pid}`;

    it('shows a reply that comes before the payload line as unexpected', BOUNDED, async (t) => {
      try {
        await tmux('tmux', ['-V'], { timeout: 5_000 });
      } catch {
        t.skip('tmux is not installed');
        return;
      }
      const run = async (...args: string[]): Promise<string> =>
        (await tmux('tmux', ['-L', socketName, ...args], { timeout: 5_000 })).stdout;
      const screenShows = async (pattern: RegExp): Promise<string> => {
        const deadline = Date.now() + 8_000;
        for (;;) {
          const screen = await run('capture-pane', '-p', '-t', 'helo');
          if (pattern.test(screen)) return screen;
          if (Date.now() > deadline) assert.fail(`screen never showed ${pattern}:\n${screen}`);
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      };
      await withServer('answers-data-early', async (server) => {
        const dir = mkdtempSync(join(tmpdir(), 'helo-classroom-'));
        const statusFile = join(dir, 'status');
        try {
          const command = `'${process.execPath}' '${HELO_BIN}' client ${server.address} --timeout 1; echo $? > '${statusFile}'; sleep 30`;
          await run(
            '-f',
            '/dev/null',
            'new-session',
            '-d',
            '-s',
            'helo',
            '-x',
            '160',
            '-y',
            '40',
            '-c',
            REPO_ROOT,
            command,
          );
          await screenShows(/Ctrl-D quits\nC:/);
          await run('send-keys', '-t', 'helo', 'DATA', 'Enter');
          await screenShows(
            /S\? unexpected: "300 DRCV" came before DATA's payload line was sent\nInput data to send:/,
          );
          await run('send-keys', '-t', 'helo', 'Hello world', 'Enter');
          await screenShows(/helo client: no reply to DATA within 1 s/);
          const deadline = Date.now() + 8_000;
          let status = '';
          while (!status.endsWith('\n') && Date.now() < deadline) {
            await new Promise((resolve) => setTimeout(resolve, 50));
            try {
              status = readFileSync(statusFile, 'utf8');
            } catch {
              // not written yet
            }
          }
          assert.equal(status, '1\n');
        } finally {
          await run('kill-server').catch(() => undefined);
          rmSync(dir, { recursive: true, force: true });
        }
      });
    });
  });
});
