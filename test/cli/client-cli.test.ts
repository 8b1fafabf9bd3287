/**
 * `helo client` as a user runs it: the real executable in a child process,
 * talking to a real server in this process on a loopback port. Piped stdin
 * for scripts; a tmux pane for the interactive mode.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { startServer, type HeloServer, type StartServerOptions } from '../../src/server/server.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { assertFailed, assertOneLineError, closedPort, runHelo } from '../helpers/run-cli.js';
import { HELO_BIN, REPO_ROOT } from '../../support/server-process.js';

const BOUNDED = { timeout: 20_000 };

describe('helo client', () => {
  let server: HeloServer | null = null;
  let store = new MemoryStore();

  async function start(options: Partial<StartServerOptions> = {}): Promise<HeloServer> {
    store = new MemoryStore();
    server = await startServer({ port: 0, store, logLevel: 'silent', ...options });
    return server;
  }

  async function payloads(): Promise<string[]> {
    return (await store.read(0, 100_000)).map((record) => record.payload.toString('latin1'));
  }

  afterEach(async () => {
    await server?.close();
    server = null;
  });

  describe('with stdin piped', () => {
    it('prints the replies of the lab transcript and exits 0', BOUNDED, async () => {
      const { port } = await start();
      const result = await runHelo(['client', '--port', String(port)], {
        input: 'HELO\nDATA\nHello world\nUSER\nQUIT\n',
      });
      assert.deepEqual(result, {
        status: 0,
        stdout: '100 OK\n300 DRCV\n400 BCMD\n200 BYE\n',
        stderr: '',
      });
      assert.deepEqual(await payloads(), ['Hello world']);
    });

    it('accepts CRLF lines, a last line without LF, and a tcp:// address', BOUNDED, async () => {
      const { port } = await start();
      const result = await runHelo(['client', `tcp://127.0.0.1:${port}`], {
        input: 'HELO lab\r\nDATA x\r\nQUIT',
      });
      assert.deepEqual(result, { status: 0, stdout: '100 OK\n300 DRCV\n200 BYE\n', stderr: '' });
      assert.deepEqual(await payloads(), ['x']);
    });

    it('sends a payload line byte for byte, whatever it says', BOUNDED, async () => {
      const { port } = await start();
      const input = Buffer.concat([
        Buffer.from('DATA\n'),
        Buffer.from([0x00, 0xff, 0x41, 0x0d, 0x0d, 0x0a]), // NUL 0xFF A CR, then CRLF
        Buffer.from('DATA\nQUIT\nDATA\n\nQUIT\n'),
      ]);
      const result = await runHelo(['client', `127.0.0.1:${port}`], { input });
      assert.equal(result.stdout, '300 DRCV\n300 DRCV\n300 DRCV\n200 BYE\n');
      assert.equal(result.status, 0);
      assert.deepEqual(await payloads(), ['\x00\xffA\r', 'QUIT', '']);
    });

    it('waits for every reply when stdin ends without QUIT, then exits 0', BOUNDED, async () => {
      const { port } = await start();
      const result = await runHelo(['client', '--port', String(port)], {
        input: 'HELO\nDATA one\nUSER\n',
      });
      assert.deepEqual(result, { status: 0, stdout: '100 OK\n300 DRCV\n400 BCMD\n', stderr: '' });
    });

    it('sends nothing after QUIT', BOUNDED, async () => {
      const { port } = await start();
      const result = await runHelo(['client', '--port', String(port)], {
        input: 'HELO\nQUIT\nDATA late\n',
      });
      assert.deepEqual(result, { status: 0, stdout: '100 OK\n200 BYE\n', stderr: '' });
      assert.deepEqual(await payloads(), []);
    });

    it('pipelines thousands of commands and prints every reply in order', BOUNDED, async () => {
      const { port } = await start();
      const count = 5000;
      const lines = Array.from({ length: count }, (_, i) => (i % 10 === 9 ? 'USER' : `DATA ${i}`));
      const result = await runHelo(['client', '--port', String(port)], {
        input: `${lines.join('\n')}\nQUIT\n`,
      });
      assert.equal(result.status, 0, result.stderr);
      const expected = lines.map((line) => (line === 'USER' ? '400 BCMD' : '300 DRCV'));
      assert.equal(result.stdout, `${[...expected, '200 BYE'].join('\n')}\n`);
      assert.deepEqual(
        await payloads(),
        lines.filter((line) => line !== 'USER').map((line) => line.slice(5)),
      );
    });

    it(
      'exits 1 when stdin ends after a bare DATA, printing the replies before it',
      BOUNDED,
      async () => {
        const { port } = await start();
        const result = await runHelo(['client', '--port', String(port)], { input: 'HELO\nDATA\n' });
        assert.equal(result.status, 1);
        assert.equal(result.stdout, '100 OK\n');
        assertOneLineError(result.stderr, /^helo client: stdin ended after a bare DATA/);
      },
    );

    it('shows 408 TOUT and exits 1 when the server closes the connection', BOUNDED, async () => {
      const { port } = await start({ idleTimeoutMs: 200 });
      // stdin stays open: the client must notice the close by itself.
      const result = await runHelo(['client', '--port', String(port)], { input: null });
      assert.equal(result.status, 1);
      assert.equal(result.stdout, '408 TOUT\n');
      assertOneLineError(
        result.stderr,
        /^helo client: 127\.0\.0\.1:\d+ closed the connection after 408 TOUT$/,
      );
    });

    it('connects to a server that starts later with --wait', BOUNDED, async () => {
      const port = await closedPort();
      const running = runHelo(['client', '--port', String(port), '--wait', '10'], {
        input: 'HELO\nQUIT\n',
      });
      const timer = setTimeout(() => void start({ port }), 300);
      try {
        const result = await running;
        assert.deepEqual(result, { status: 0, stdout: '100 OK\n200 BYE\n', stderr: '' });
      } finally {
        clearTimeout(timer);
      }
    });
  });

  describe('failures', () => {
    it(
      'reports an unreachable server in one line, exit 1, nothing on stdout',
      BOUNDED,
      async () => {
        const port = await closedPort();
        const result = await runHelo(['client', '--port', String(port)], { input: 'HELO\n' });
        assertFailed(
          result,
          1,
          `helo client: connection refused at 127.0.0.1:${port} — is the server running?`,
        );
      },
    );

    for (const args of [
      ['--port', 'abc'],
      ['--port', '70000'],
      ['--port', '0'],
      ['--bogus'],
      ['--timeout', 'soon'],
      ['http://127.0.0.1:7777'],
      ['unix:'],
      ['127.0.0.1:99999'],
      ['one:1', 'two:2'],
    ]) {
      it(`exits 2 with one line for ${args.join(' ')}`, BOUNDED, async () => {
        const result = await runHelo(['client', ...args]);
        assertFailed(result, 2, /^helo client: /);
      });
    }

    it('reports an unreachable WebSocket address in one line, exit 1', BOUNDED, async () => {
      const port = await closedPort();
      const result = await runHelo(['client', `ws://127.0.0.1:${port}/ws`]);
      assertFailed(result, 1, /connection refused at ws:\/\/127\.0\.0\.1:\d+\/ws/);
    });

    it('reports a missing Unix socket in one line, exit 1', BOUNDED, async () => {
      const result = await runHelo(['client', 'unix:/nonexistent/helo.sock']);
      assertFailed(
        result,
        1,
        /no socket at unix:\/nonexistent\/helo.sock — is the server running\?/,
      );
    });

    it('prints its help on --help', BOUNDED, async () => {
      const result = await runHelo(['client', '--help']);
      assert.equal(result.status, 0);
      assert.match(result.stdout, /^usage: helo client \[ADDRESS\]/);
      assert.match(result.stdout, /--wait SECONDS/);
    });
  });

  describe('at a terminal (tmux)', () => {
    const tmux = promisify(execFile);
    const socketName = `helo-test-${process.pid}`;
    let hasTmux = true;

    async function tmuxRun(...args: string[]): Promise<string> {
      const { stdout } = await tmux('tmux', ['-L', socketName, ...args], { timeout: 5_000 });
      return stdout;
    }

    /** Polls the pane until it shows `pattern`. */
    async function waitForScreen(pattern: RegExp, timeoutMs = 8_000): Promise<string> {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const screen = await tmuxRun('capture-pane', '-p', '-t', 'helo');
        if (pattern.test(screen)) return screen;
        if (Date.now() > deadline) assert.fail(`screen never showed ${pattern}:\n${screen}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }

    /** Starts `helo client` in a fresh pane; its exit status lands in a file. */
    async function startClient(port: number): Promise<{ statusFile: string; dir: string }> {
      const dir = mkdtempSync(join(tmpdir(), 'helo-cli-'));
      const statusFile = join(dir, 'status');
      const command = `'${process.execPath}' '${HELO_BIN}' client --port ${port}; echo $? > '${statusFile}'; sleep 30`;
      await tmuxRun(
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
      await waitForScreen(
        /connected to 127\.0\.0\.1:\d+ — type HELO, DATA, QUIT; Ctrl-D quits\nC:/,
      );
      return { statusFile, dir };
    }

    async function exitStatus(statusFile: string): Promise<string> {
      const deadline = Date.now() + 8_000;
      for (;;) {
        try {
          const text = readFileSync(statusFile, 'utf8');
          if (text.endsWith('\n')) return text.trim();
        } catch {
          // not written yet
        }
        if (Date.now() > deadline) assert.fail('the client did not exit');
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }

    afterEach(async () => {
      await tmuxRun('kill-server').catch(() => undefined);
    });

    it(
      'runs the lab session with prompts and round-trip times; Ctrl-D quits',
      BOUNDED,
      async (t) => {
        try {
          await tmux('tmux', ['-V'], { timeout: 5_000 });
        } catch {
          hasTmux = false;
        }
        if (!hasTmux) {
          t.skip('tmux is not installed');
          return;
        }
        const { port } = await start();
        const { statusFile, dir } = await startClient(port);
        try {
          await tmuxRun('send-keys', '-t', 'helo', 'HELO', 'Enter');
          await waitForScreen(/C: HELO\nS: 100 OK {3}\(\d+\.\d ms\)\nC:/);
          await tmuxRun('send-keys', '-t', 'helo', 'DATA', 'Enter');
          await waitForScreen(/C: DATA\nInput data to send:/);
          await tmuxRun('send-keys', '-t', 'helo', 'Hello world', 'Enter');
          await waitForScreen(/Input data to send: Hello world\nS: 300 DRCV {3}\(\d+\.\d ms\)\nC:/);
          await tmuxRun('send-keys', '-t', 'helo', 'USER', 'Enter');
          await waitForScreen(/C: USER\nS: 400 BCMD {3}\(\d+\.\d ms\)\nC:/);
          // History: Up brings back the last line.
          await tmuxRun('send-keys', '-t', 'helo', 'Up', 'Enter');
          await waitForScreen(/C: USER\nS: 400 BCMD {3}\(\d+\.\d ms\)\nC: USER\nS: 400 BCMD/);
          await tmuxRun('send-keys', '-t', 'helo', 'C-d');
          await waitForScreen(/C: QUIT\nS: 200 BYE {3}\(\d+\.\d ms\)\n/);
          assert.equal(await exitStatus(statusFile), '0');
          assert.deepEqual(await payloads(), ['Hello world']);
        } finally {
          rmSync(dir, { recursive: true, force: true });
        }
      },
    );

    it('shows the server closing the connection and exits 1', BOUNDED, async (t) => {
      if (!hasTmux) {
        t.skip('tmux is not installed');
        return;
      }
      const { port } = await start({ idleTimeoutMs: 300 });
      const { statusFile, dir } = await startClient(port);
      try {
        await waitForScreen(
          /S: 408 TOUT\nhelo client: 127\.0\.0\.1:\d+ closed the connection after 408 TOUT/,
        );
        assert.equal(await exitStatus(statusFile), '1');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('Ctrl-C quits politely too', BOUNDED, async (t) => {
      if (!hasTmux) {
        t.skip('tmux is not installed');
        return;
      }
      const { port } = await start();
      const { statusFile, dir } = await startClient(port);
      try {
        await tmuxRun('send-keys', '-t', 'helo', 'C-c');
        await waitForScreen(/C: QUIT\nS: 200 BYE/);
        assert.equal(await exitStatus(statusFile), '0');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });
});
