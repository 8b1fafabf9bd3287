/**
 * `--proxy-protocol` (docs/PROTOCOL.md §10) on every stream transport in
 * every mode that serves it: TLS (the header before the handshake) and Unix
 * in event-loop, sequential, cluster and threads mode (fork mode serves TCP
 * only; test/server/proxy-protocol.test.ts covers TCP in all five). And
 * each kind of refusal, in a real `helo server` process of every mode:
 * closed without a reply, logged once with its reason, counted in
 * `helo_connections_rejected_total{reason="proxy"}`. UDP and the HTTP port's
 * `/ws` take no header.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as connectTcp } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { connect as connectTls } from 'node:tls';
import { runServer } from '../../src/server/run-server.js';
import type { RunningServer, StartServerOptions } from '../../src/server/server.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { StoredRecord } from '../../src/store/store.js';
import { connect as connectClient } from '../../src/client/client.js';
import { connectUdp } from '../../src/client/udp-client.js';
import { proxyV1, proxyV2 } from '../../support/proxy-header-bytes.js';
import { spawnServer } from '../../support/server-process.js';
import { makeTestPki } from '../helpers/certificates.js';
import { httpRequest } from '../helpers/http-client.js';
import { delay, RawClient } from '../helpers/raw-client.js';

const pki = makeTestPki();
const dir = mkdtempSync(join(tmpdir(), 'helo-proxy-modes-'));
after(() => {
  pki.remove();
  rmSync(dir, { recursive: true, force: true });
});

const servers: RunningServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

const CLIENT = { address: '203.0.113.7', port: 40001 };
const DESTINATION = { address: '192.0.2.1', port: 7777 };
const SESSION = 'HELO lb\r\nDATA hello\r\nQUIT\r\n';
const REPLIES = '100 OK\r\n300 DRCV\r\n200 BYE\r\n';

/** The port of the server's URL with this scheme (every mode lists its listeners in `urls`). */
function portOf(server: RunningServer, scheme: string): number {
  const url = server.urls.find((candidate) => candidate.startsWith(`${scheme}://`));
  assert.ok(url, `no ${scheme}:// in ${server.urls.join(' ')}`);
  return Number(new URL(url).port);
}

async function records(store: MemoryStore, count: number): Promise<StoredRecord[]> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const read = await store.read(0, 100);
    if (read.length >= count || Date.now() > deadline) return read;
    await delay(20);
  }
}

/** A header in clear, then TLS on the same socket, then a whole session; the text received. */
async function tlsSession(port: number): Promise<{ text: string; balancerPort: number }> {
  const raw = connectTcp({ host: '127.0.0.1', port });
  await once(raw, 'connect');
  const balancerPort = raw.localPort!;
  raw.write(proxyV2({ source: CLIENT, destination: DESTINATION }));
  const tls = connectTls({ socket: raw, ca: pki.read(pki.caCert), servername: 'localhost' });
  let text = '';
  tls.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  tls.on('error', () => undefined);
  await once(tls, 'secureConnect');
  tls.write(SESSION);
  await once(tls, 'close');
  return { text, balancerPort };
}

describe('--proxy-protocol on TLS and Unix in every mode (docs/PROTOCOL.md §10)', () => {
  for (const mode of ['event-loop', 'sequential', 'cluster', 'threads'] as const) {
    it(`${mode} mode: TLS (header before the handshake) and Unix (v2 UNIX, v1)`, async () => {
      const store = new MemoryStore();
      const unixPath = join(dir, `${mode}.sock`);
      const options: Partial<StartServerOptions> = {
        port: 0,
        tlsPort: 0,
        tlsCertPath: pki.serverCert,
        tlsKeyPath: pki.serverKey,
        unixPath,
        mode,
        workers: 2,
        logLevel: 'silent',
        proxyProtocol: true,
      };
      const server = await runServer({ ...options, store } as StartServerOptions);
      servers.push(server);

      const tls = await tlsSession(portOf(server, 'tls'));
      assert.equal(tls.text, REPLIES);
      for (const header of [
        proxyV2({ family: 'unix', source: { address: '/run/client.sock', port: 0 } }),
        proxyV1(CLIENT, DESTINATION),
      ]) {
        const client = await RawClient.openUnix(unixPath);
        client.write(Buffer.concat([header, Buffer.from(SESSION, 'latin1')]));
        await client.untilEnded();
        client.close();
        assert.equal(client.text, REPLIES);
      }
      const stored = (await records(store, 3)).map((record) => [record.peer, record.proxy]);
      assert.deepEqual(stored, [
        ['203.0.113.7:40001', `127.0.0.1:${tls.balancerPort}`],
        ['unix:/run/client.sock', 'unix'],
        ['203.0.113.7:40001', 'unix'],
      ]);
    });
  }

  it('UDP and the HTTP port (/ws) take no header', async () => {
    const store = new MemoryStore();
    const server = await runServer({
      port: 0,
      udpPort: 0,
      httpPort: 0,
      logLevel: 'silent',
      proxyProtocol: true,
      store,
    } as StartServerOptions);
    servers.push(server);
    const ws = await connectClient({ address: `ws://127.0.0.1:${portOf(server, 'ws')}/ws` });
    try {
      assert.equal((await ws.helo('w')).code, 100);
      assert.equal((await ws.data('over ws')).code, 300);
    } finally {
      await ws.quit().catch(() => undefined);
    }
    const udp = await connectUdp({
      host: '127.0.0.1',
      port: (server as unknown as { udpPort: number }).udpPort,
    });
    try {
      assert.equal((await udp.data('over udp')).code, 300);
    } finally {
      await udp.close();
    }
    const stored = await records(store, 2);
    assert.deepEqual(stored.map((record) => record.proxy).sort(), [null, null]);
  });
});

/** A connection from `localAddress` that sends `bytes`; what it received before the close. */
async function attempt(port: number, localAddress: string, bytes: string): Promise<string> {
  const socket = connectTcp({ host: '127.0.0.1', port, localAddress });
  let text = '';
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  socket.on('error', () => undefined);
  // Not events.once(): it rejects on the reset a refusal may cause, and a reset is a close here.
  const closed = new Promise((resolve) => socket.once('close', resolve));
  await new Promise((resolve) => socket.once('connect', resolve));
  if (bytes !== '') socket.write(bytes);
  await closed;
  return text;
}

describe('helo server --proxy-protocol refusals, in every mode', () => {
  // 127.0.0.2 is the balancer; 127.0.0.1 is outside --proxy-allow.
  const TRUSTED = '127.0.0.2';
  const REFUSALS: { from: string; send: string; reason: string }[] = [
    { from: TRUSTED, send: SESSION, reason: 'not a PROXY protocol header' },
    {
      from: TRUSTED,
      send: 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n',
      reason: 'v1 header not ended by CRLF',
    },
    {
      from: TRUSTED,
      send: `PROXY UNKNOWN ${'x'.repeat(92)}\r\n`,
      reason: 'v1 header longer than 107 bytes',
    },
    { from: TRUSTED, send: 'PROXY TCP4 1.2.3.4 ', reason: 'PROXY header not complete in time' },
    {
      from: '127.0.0.1',
      send: 'PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n',
      reason: 'source not in --proxy-allow',
    },
  ];

  for (const mode of ['event-loop', 'sequential', 'cluster', 'threads', 'fork'] as const) {
    it(`${mode} mode: closed without a reply, logged once with the reason, counted`, async () => {
      const hasHttp = mode !== 'fork'; // fork mode serves TCP only
      const server = await spawnServer([
        '--store',
        'memory:',
        '--mode',
        mode,
        ...(mode === 'cluster' ? ['--workers', '2'] : []),
        ...(hasHttp ? ['--http-port', '0'] : []),
        '--proxy-protocol',
        '--proxy-allow',
        TRUSTED,
        '--proxy-timeout',
        '0.3',
      ]);
      try {
        for (const { from, send } of REFUSALS) {
          assert.equal(await attempt(server.port, from, send), '', `${from} ${send}`);
        }
        // The stage is not in the way of a good header from the balancer.
        const good = await attempt(
          server.port,
          TRUSTED,
          `${proxyV1(CLIENT, DESTINATION).toString('latin1')}${SESSION}`,
        );
        assert.equal(good, REPLIES);
        const deadline = Date.now() + 5_000;
        const refusalLines = (): { reason: string }[] =>
          server
            .stderr()
            .split('\n')
            .filter((line) => line.includes('"connection refused: PROXY protocol"'))
            .map((line) => JSON.parse(line) as { reason: string });
        while (refusalLines().length < REFUSALS.length && Date.now() < deadline) await delay(20);
        await delay(100); // room for a second, wrong, line about the same connection
        assert.deepEqual(
          refusalLines()
            .map((line) => line.reason)
            .sort(),
          REFUSALS.map((refusal) => refusal.reason).sort(),
          server.stderr(),
        );
        if (hasHttp) {
          const match = /on http:\/\/127\.0\.0\.1:(\d+)\//.exec(server.stdout());
          assert.ok(match, server.stdout());
          const { body } = await httpRequest(Number(match[1]), '/metrics');
          assert.match(body, /^helo_connections_rejected_total\{reason="proxy"\} 5$/m);
        }
      } finally {
        assert.equal(await server.stop(), 0);
      }
    });
  }
});

describe('helo server --proxy-protocol --max-connections-per-ip: the refusal names the client', () => {
  for (const mode of ['event-loop', 'cluster', 'threads', 'fork'] as const) {
    it(`${mode} mode: the 503 BUSY log line shows the header's client as peer, and the balancer`, async () => {
      const server = await spawnServer([
        '--store',
        'memory:',
        '--mode',
        mode,
        ...(mode === 'cluster' ? ['--workers', '2'] : []),
        '--proxy-protocol',
        '--max-connections-per-ip',
        '1',
        '--log-level',
        'debug',
      ]);
      const first = await RawClient.open(server.port);
      try {
        const client = (port: number): Buffer =>
          Buffer.concat([
            proxyV1({ address: '198.51.100.1', port }, DESTINATION),
            Buffer.from('HELO\r\n'),
          ]);
        first.write(client(1));
        await first.until(() => first.text === '100 OK\r\n');
        const second = await RawClient.open(server.port);
        const balancerPort = second.socket.localPort;
        second.write(client(2));
        await second.untilEnded();
        second.close();
        assert.equal(second.text, '503 BUSY\r\n');
        const deadline = Date.now() + 5_000;
        const busyLine = (): { peer?: string; proxy?: string } | undefined => {
          const line = server
            .stderr()
            .split('\n')
            .find((entry) => entry.includes('"connection refused: 503 BUSY"'));
          return line === undefined ? undefined : (JSON.parse(line) as { peer?: string });
        };
        while (busyLine() === undefined && Date.now() < deadline) await delay(20);
        const line = busyLine();
        assert.ok(line, server.stderr());
        assert.equal(line.peer, '198.51.100.1:2');
        assert.equal(line.proxy, `127.0.0.1:${balancerPort}`);
      } finally {
        first.close();
        assert.equal(await server.stop(), 0);
      }
    });
  }
});
