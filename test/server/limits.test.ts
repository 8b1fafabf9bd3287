/**
 * Issue 6's limits on the real `helo server` process, where the unit tests
 * (connection.test.ts, backpressure.test.ts) stop short: the slow-reader
 * disconnect is logged (a warning, and the session's summary says why),
 * other clients are served meanwhile, and the per-address limit counts
 * each address on its own.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { delay, RawClient } from '../helpers/raw-client.js';
import { spawnServer, type ServerProcess } from '../../support/server-process.js';

const OK = '100 OK\r\n';
const BUSY = '503 BUSY\r\n';

interface LogLine {
  readonly level?: number;
  readonly msg?: string;
  readonly reason?: string;
  readonly peer?: string;
}

function logLines(server: ServerProcess): LogLine[] {
  return server
    .stderr()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as LogLine);
}

/** Resolves once a log line matches (logs are written asynchronously). */
async function untilLogged(
  server: ServerProcess,
  predicate: (line: LogLine) => boolean,
  timeoutMs = 5_000,
): Promise<LogLine> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const found = logLines(server).find(predicate);
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`not logged; stderr: ${server.stderr()}`);
    await delay(50);
  }
}

describe('limits (server process)', () => {
  let server: ServerProcess | null = null;
  const clients: RawClient[] = [];

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await server?.stop();
    server = null;
  });

  it('disconnects a client that never reads, logs why, and serves others meanwhile', async () => {
    server = await spawnServer(['--store', 'memory:', '--slow-reader-timeout', '1']);
    const socket = connect({ port: server.port, host: '127.0.0.1' });
    socket.on('error', () => {});
    const closed = new Promise((resolve) => socket.once('close', resolve));
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.pause(); // reads nothing, ever
    // Empty lines: 10 reply bytes for each byte sent, enough to fill the
    // kernel's buffers and then the server's high-water mark (64 KiB).
    const flood = setInterval(() => {
      if (socket.writable && socket.writableLength < 4_000_000) {
        socket.write(Buffer.alloc(1_000_000, 0x0a));
      }
    }, 50);
    try {
      // Meanwhile a normal client is served, several times over.
      for (let i = 0; i < 5; i++) {
        const client = await RawClient.open(server.port);
        clients.push(client);
        client.write('HELO\r\nQUIT\r\n');
        await client.untilEnded(2_000);
        assert.equal(client.text, OK + '200 BYE\r\n');
        await delay(100);
      }
      await Promise.race([closed, delay(8_000)]);
    } finally {
      clearInterval(flood);
    }
    assert.equal(socket.destroyed, true, 'the server should have disconnected the slow reader');
    const warning = await untilLogged(
      server,
      (line) => line.msg?.includes('does not read') ?? false,
    );
    assert.equal(warning.level, 40, 'logged as a warning');
    await untilLogged(
      server,
      (line) => line.msg === 'session closed' && line.reason === 'slow-reader',
    );
    socket.destroy();
  });

  it('keeps a slow reader that catches up within the timeout', async () => {
    server = await spawnServer(['--store', 'memory:', '--slow-reader-timeout', '3']);
    const socket = connect({ port: server.port, host: '127.0.0.1' });
    socket.on('error', () => {});
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.pause();
    const requests = 500_000; // 4 MB of replies: more than the kernel buffers here
    socket.write('HELO\r\n'.repeat(requests) + 'QUIT\r\n');
    await delay(1_000);
    let received = 0;
    socket.on('data', (chunk: Buffer) => (received += chunk.length));
    const ended = new Promise((resolve) => socket.once('end', resolve));
    socket.resume();
    await Promise.race([ended, delay(8_000)]);
    assert.equal(received, OK.length * requests + '200 BYE\r\n'.length);
    socket.destroy();
  });

  it('limits each client address on its own: a second loopback address is still served', async () => {
    server = await spawnServer([
      '--store',
      'memory:',
      '--max-connections-per-ip',
      '2',
      '--log-level',
      'debug',
    ]);
    const port = server.port;
    const fromFirst = [await RawClient.open(port), await RawClient.open(port)];
    clients.push(...fromFirst);
    for (const client of fromFirst) {
      client.write('HELO\r\n');
      await client.untilBytes(OK.length);
    }
    const refused = await RawClient.open(port);
    clients.push(refused);
    await refused.untilEnded();
    assert.equal(refused.text, BUSY);
    await untilLogged(
      server,
      (line) =>
        line.msg === 'connection refused: 503 BUSY' && line.reason === 'max-connections-per-ip',
    );

    // 127.0.0.2 is loopback too (all of 127/8 is), but another address.
    const other = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.2' });
    other.on('error', () => {});
    let otherText = '';
    other.on('data', (chunk: Buffer) => (otherText += chunk.toString('latin1')));
    await new Promise((resolve) => other.once('connect', resolve));
    other.write('HELO\r\nQUIT\r\n');
    await new Promise((resolve) => other.once('close', resolve));
    assert.equal(otherText, OK + '200 BYE\r\n');

    // A freed slot is given again.
    fromFirst[0]!.write('QUIT\r\n');
    await fromFirst[0]!.untilEnded();
    await delay(100);
    const again = await RawClient.open(port);
    clients.push(again);
    again.write('HELO\r\n');
    await again.untilBytes(OK.length);
    assert.equal(again.text, OK);
  });
});
