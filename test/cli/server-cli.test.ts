/**
 * `helo server` as a real process: start-up, bad flags, busy ports, an
 * unusable store, and graceful shutdown on signals to the process or its
 * whole process group.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { delay, RawClient } from '../helpers/raw-client.js';
import { assertFailed, assertOneLineError, runHelo } from '../helpers/run-cli.js';
import { spawnServer } from '../../support/server-process.js';

describe('helo server (process)', () => {
  let tempDir = '';
  after(async () => {
    if (tempDir) await rm(tempDir, { recursive: true, force: true });
  });

  it('prints the port it picked for --port 0 and serves the lab transcript', async () => {
    const server = await spawnServer(['--store', 'memory:']);
    try {
      assert.ok(server.port > 0);
      const client = await RawClient.open(server.port);
      client.write('HELO\r\nDATA\r\nHello world\r\nUSER\r\nQUIT\r\n');
      await client.untilEnded();
      assert.equal(client.text, '100 OK\r\n300 DRCV\r\n400 BCMD\r\n200 BYE\r\n');
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });

  it('reads its flags from HELO_* environment variables, the command line winning', async () => {
    const server = await spawnServer([], {
      env: { HELO_STORE: 'memory:', HELO_MAX_LINE: '4', HELO_PORT: '1' },
    });
    try {
      const client = await RawClient.open(server.port);
      client.write('HELO 12345\r\nHELO\r\n');
      await client.untilBytes(16);
      assert.equal(client.text, '401 LONG\r\n100 OK\r\n');
      client.close();
    } finally {
      await server.stop();
    }
  });

  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`on ${signal} answers idle sessions 503 BUSY and exits 0`, async () => {
      const server = await spawnServer(['--store', 'memory:']);
      const client = await RawClient.open(server.port);
      client.write('HELO\r\n');
      await client.untilBytes(8);
      const startedAt = Date.now();
      const code = await server.stop(signal);
      assert.equal(code, 0);
      assert.ok(Date.now() - startedAt < 10_000);
      await client.untilEnded();
      assert.equal(client.text, '100 OK\r\n503 BUSY\r\n');
    });
  }

  it('exits 0 when SIGTERM is sent to its whole process group', async () => {
    const server = await spawnServer(['--store', 'memory:'], { detached: true });
    const client = await RawClient.open(server.port);
    client.write('DATA\r\nlast\r\n');
    await client.untilBytes(10);
    const exited = once(server.child, 'exit');
    process.kill(-server.child.pid!, 'SIGTERM');
    const [code] = (await exited) as [number | null];
    assert.equal(code, 0);
    await client.untilEnded();
    assert.equal(client.text, '300 DRCV\r\n503 BUSY\r\n');
  });

  it('stops on SIGTERM with a sqlite store and keeps what it acknowledged', async () => {
    tempDir ||= await mkdtemp(join(tmpdir(), 'helo-cli-'));
    const store = `sqlite:${join(tempDir, 'graceful.db')}`;
    const server = await spawnServer(['--store', store]);
    const client = await RawClient.open(server.port);
    client.write('DATA one\r\nDATA two\r\n');
    await client.untilBytes(20);
    assert.equal(await server.stop(), 0);
    const exported = await runHelo(['store', 'export', '--store', store]);
    assert.equal(exported.status, 0, exported.stderr);
    const payloads = exported.stdout
      .trim()
      .split('\n')
      .map((line) => Buffer.from(JSON.parse(line).payloadBase64, 'base64').toString());
    assert.deepEqual(payloads, ['one', 'two']);
  });

  for (const [flags, pattern] of [
    [['--port', 'abc'], /--port must be a whole number, got 'abc'/],
    [['--port', '70000'], /--port must be between 0 and 65535/],
    [['--max-line', '0'], /--max-line must be between/],
    [['--idle-timeout', 'soon'], /--idle-timeout must be a number of seconds/],
    [['--log-level', 'loud'], /--log-level must be one of/],
    [['--store', 'redis://x'], /--store must be sqlite:PATH, memory: or postgres:/],
    [['--bogus'], /bogus/],
    [['--port', '-1'], /--port/],
    [
      ['--mode', 'threaded'],
      /--mode must be one of event-loop, sequential, fork, cluster, threads/,
    ],
    [['--workers', '0'], /--workers must be between 1 and/],
    [['--mode', 'threads', '--threads', '0'], /--threads must be between 1 and/],
    [['--threads', 'many'], /--threads must be a whole number/],
    [['--work-ms', 'lots'], /--work-ms must be a whole number/],
    [['--mode', 'fork', '--http-port', '0'], /fork mode serves TCP only/],
    [['--http-token', 'short'], /an HTTP token is 16 to 256 characters/],
    [['--proxy-allow', 'localhost'], /--proxy-allow must be CIDR blocks such as 10\.0\.0\.0\/8/],
    [['--proxy-timeout', 'soon'], /--proxy-timeout must be a number of seconds, got 'soon'/],
    // In seconds, as the flag is given (not the milliseconds it becomes).
    [
      ['--proxy-timeout', '0'],
      /^helo server: --proxy-timeout must be more than 0 seconds, got '0'$/,
    ],
  ] as const) {
    it(`refuses ${flags.join(' ')} with one line and exit 2`, async () => {
      const result = await runHelo(['server', ...flags]);
      assertFailed(result, 2, pattern);
    });
  }

  for (const mode of ['event-loop', 'sequential', 'fork', 'cluster', 'threads']) {
    it(`reports a busy port in one line and exits 1 (${mode} mode)`, async () => {
      const blocker = createServer();
      blocker.listen(0, '127.0.0.1');
      await once(blocker, 'listening');
      const port = (blocker.address() as { port: number }).port;
      try {
        const result = await runHelo([
          'server',
          '--port',
          String(port),
          '--store',
          'memory:',
          '--mode',
          mode,
          '--workers',
          '2',
        ]);
        assert.equal(result.status, 1);
        assertOneLineError(result.stderr, new RegExp(`127\\.0\\.0\\.1:${port}.*already in use`));
      } finally {
        blocker.close();
      }
    });
  }

  it('reports a store that cannot be opened in one line and exits 1', async () => {
    tempDir ||= await mkdtemp(join(tmpdir(), 'helo-cli-'));
    const file = join(tempDir, 'not-a-dir');
    await writeFile(file, 'x');
    const result = await runHelo([
      'server',
      '--port',
      '0',
      '--store',
      `sqlite:${join(file, 'helo.db')}`,
    ]);
    assert.equal(result.status, 1);
    assertOneLineError(result.stderr, /not-a-dir/);
  });

  it('prints help for the server and the command list', async () => {
    const help = await runHelo(['server', '--help']);
    assert.equal(help.status, 0);
    for (const flag of ['--host', '--port', '--store', '--max-line', '--idle-timeout']) {
      assert.ok(help.stdout.includes(flag), `help mentions ${flag}`);
    }
    assert.match(help.stdout, /HELO_MAX_LINE/);
    // Every flag line starts with two spaces; a long description's next
    // lines too (they once started at column 0, under nothing).
    const flagLines = help.stdout.split('\n\n')[2]!.split('\n').slice(1);
    assert.ok(flagLines.length > 20, 'the flags section');
    for (const line of flagLines) assert.match(line, /^ {2}\S|^ {20,}\S/, `indented: ${line}`);
    const top = await runHelo(['--help']);
    assert.equal(top.status, 0);
    assert.match(top.stdout, /server/);
    const unknown = await runHelo(['serve']);
    assert.equal(unknown.status, 2);
    assertOneLineError(unknown.stderr, /unknown command 'serve'/);
  });

  it('logs one JSON summary line per session, never the payload', async () => {
    const server = await spawnServer(['--store', 'memory:', '--log-level', 'info']);
    const client = await RawClient.open(server.port);
    client.write('HELO logger\r\nDATA secret-payload-7f3a\r\nQUIT\r\n');
    await client.untilEnded();
    assert.equal(await server.stop(), 0);
    const entries = server
      .stderr()
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const summaries = entries.filter((entry) => entry.msg === 'session closed');
    assert.equal(summaries.length, 1);
    const summary = summaries[0]!;
    assert.match(String(summary.session), /^[0-9a-f]{8}-\w+$/);
    assert.match(String(summary.peer), /^127\.0\.0\.1:\d+$/);
    assert.equal(summary.commands, 3);
    assert.equal(summary.payloads, 1);
    assert.equal(summary.reason, 'quit');
    assert.equal(typeof summary.durationMs, 'number');
    assert.equal(summary.bytesOut, '100 OK\r\n300 DRCV\r\n200 BYE\r\n'.length);
    assert.doesNotMatch(server.stderr(), /secret-payload/);
  });

  it('keeps serving other clients while one of them resets mid-DATA', async () => {
    const server = await spawnServer(['--store', 'memory:']);
    try {
      const rude = await RawClient.open(server.port);
      rude.write('DATA\r\nhalf');
      await delay(20);
      rude.socket.resetAndDestroy();
      const polite = await RawClient.open(server.port);
      polite.write('HELO\r\nQUIT\r\n');
      await polite.untilEnded();
      assert.equal(polite.text, '100 OK\r\n200 BYE\r\n');
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });
});
