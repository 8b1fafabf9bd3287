/**
 * `--proxy-protocol` on real sockets (docs/PROTOCOL.md §10): the header's
 * client becomes the record's `peer` and the balancer its `proxy`, over TCP,
 * TLS (header before the handshake) and Unix, in every mode; refusals close
 * without a reply and count in `helo_connections_rejected_total{reason="proxy"}`;
 * `--max-connections-per-ip` counts the header's client.
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
import { proxyV1, proxyV2 } from '../../support/proxy-header-bytes.js';
import { makeTestPki } from '../helpers/certificates.js';
import { httpRequest } from '../helpers/http-client.js';
import { delay, RawClient } from '../helpers/raw-client.js';

const pki = makeTestPki();
const dir = mkdtempSync(join(tmpdir(), 'helo-proxy-'));
after(() => {
  pki.remove();
  rmSync(dir, { recursive: true, force: true });
});

const opened: { servers: RunningServer[]; clients: RawClient[] } = { servers: [], clients: [] };
afterEach(async () => {
  for (const client of opened.clients.splice(0)) client.close();
  for (const server of opened.servers.splice(0)) await server.close();
});

async function serve(
  options: Partial<StartServerOptions>,
): Promise<{ server: RunningServer; store: MemoryStore }> {
  const store = new MemoryStore();
  const server = await runServer({
    port: 0,
    logLevel: 'silent',
    workers: 2,
    proxyProtocol: true,
    ...options,
    store,
  });
  opened.servers.push(server);
  return { server, store };
}

async function open(port: number): Promise<RawClient> {
  const client = await RawClient.open(port);
  opened.clients.push(client);
  return client;
}

const CLIENT = { address: '203.0.113.7', port: 40001 };
const DESTINATION = { address: '192.0.2.1', port: 7777 };
const SESSION = 'HELO lb\r\nDATA hello\r\nQUIT\r\n';
const REPLIES = '100 OK\r\n300 DRCV\r\n200 BYE\r\n';

/** Sends a header and a session in one write (§10: bytes after the header belong to the session). */
async function session(port: number, header: Buffer): Promise<RawClient> {
  const client = await open(port);
  client.write(Buffer.concat([header, Buffer.from(SESSION, 'latin1')]));
  await client.untilEnded();
  return client;
}

async function records(store: MemoryStore, count = 1): Promise<StoredRecord[]> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const read = await store.read(0, 100);
    if (read.length >= count) return read;
    if (Date.now() > deadline) throw new Error(`expected ${count} records, found ${read.length}`);
    await delay(20);
  }
}

/** Polls /metrics until `helo_connections_rejected_total{reason="proxy"}` reaches `count`. */
async function proxyRefusals(httpPort: number, count: number): Promise<number> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const { body } = await httpRequest(httpPort, '/metrics');
    const match = /^helo_connections_rejected_total\{reason="proxy"\} (\d+)$/m.exec(body);
    const value = match === null ? -1 : Number(match[1]);
    if (value >= count || Date.now() > deadline) return value;
    await delay(20);
  }
}

describe('--proxy-protocol (docs/PROTOCOL.md §10)', () => {
  it('v1: the header names the peer; the balancer is the proxy', async () => {
    const { server, store } = await serve({});
    const client = await session(server.port, proxyV1(CLIENT, DESTINATION));
    assert.equal(client.text, REPLIES);
    const [record] = await records(store);
    assert.equal(record!.peer, '203.0.113.7:40001');
    assert.equal(record!.proxy, `127.0.0.1:${client.socket.localPort}`);
  });

  it('v2 TCP6, sent byte by byte: peer in brackets', async () => {
    const { server, store } = await serve({});
    const client = await open(server.port);
    const header = proxyV2({
      family: 'inet6',
      source: { address: '2001:db8::7', port: 5 },
      destination: { address: '2001:db8::1', port: 7777 },
    });
    for (const byte of header) {
      client.write(Buffer.from([byte]));
      await delay(1);
    }
    client.write(SESSION);
    await client.untilEnded();
    assert.equal(client.text, REPLIES);
    assert.equal((await records(store))[0]!.peer, '[2001:db8::7]:5');
  });

  it("v2 LOCAL (a health check) keeps the socket's own address", async () => {
    const { server, store } = await serve({});
    const client = await session(server.port, proxyV2({ command: 'local', family: 'unspec' }));
    assert.equal(client.text, REPLIES);
    const [record] = await records(store);
    const own = `127.0.0.1:${client.socket.localPort}`;
    assert.equal(record!.peer, own);
    assert.equal(record!.proxy, own);
  });

  it('over TLS the header comes before the handshake', async () => {
    const { server, store } = await serve({
      tlsPort: 0,
      tlsCertPath: pki.serverCert,
      tlsKeyPath: pki.serverKey,
    });
    const tlsPort = (server as unknown as { tlsPort: number }).tlsPort;
    const raw = connectTcp({ host: '127.0.0.1', port: tlsPort });
    await once(raw, 'connect');
    const balancerPort = raw.localPort;
    raw.write(proxyV1(CLIENT, DESTINATION));
    const tls = connectTls({ socket: raw, ca: pki.read(pki.caCert), servername: 'localhost' });
    let text = '';
    tls.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
    tls.on('error', () => undefined);
    await once(tls, 'secureConnect');
    tls.write(SESSION);
    await once(tls, 'close');
    assert.equal(text, REPLIES);
    const [record] = await records(store);
    assert.equal(record!.peer, '203.0.113.7:40001');
    assert.equal(record!.proxy, `127.0.0.1:${balancerPort}`);
  });

  it('over a Unix socket (always trusted): v2 UNIX and v1', async () => {
    const path = join(dir, 'proxy.sock');
    const { store } = await serve({ unixPath: path, proxyAllow: ['10.0.0.0/8'] });
    for (const header of [
      proxyV2({ family: 'unix', source: { address: '/run/client.sock', port: 0 } }),
      proxyV1(CLIENT, DESTINATION),
    ]) {
      const client = await RawClient.openUnix(path);
      opened.clients.push(client);
      client.write(Buffer.concat([header, Buffer.from(SESSION, 'latin1')]));
      await client.untilEnded();
      assert.equal(client.text, REPLIES);
    }
    const peers = (await records(store, 2)).map((record) => [record.peer, record.proxy]);
    assert.deepEqual(peers, [
      ['unix:/run/client.sock', 'unix'],
      ['203.0.113.7:40001', 'unix'],
    ]);
  });

  it('refuses without a reply, counted as reason="proxy": no header, garbage, 108-byte v1, slow, untrusted', async () => {
    const { server, store } = await serve({ httpPort: 0, proxyTimeoutMs: 300 });
    const httpPort = (server as unknown as { httpPort: number }).httpPort;
    const attempts: Buffer[] = [
      Buffer.from(SESSION, 'latin1'),
      Buffer.from('\x00\xff garbage\r\n', 'latin1'),
      Buffer.from(`PROXY UNKNOWN ${'x'.repeat(92)}\r\n${SESSION}`, 'latin1'),
      Buffer.from('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n' + SESSION, 'latin1'),
    ];
    for (const bytes of attempts) {
      const client = await open(server.port);
      client.write(bytes);
      await client.untilEnded();
      assert.equal(client.text, '');
    }
    // Slow: half a header, then nothing until --proxy-timeout has passed.
    const slow = await open(server.port);
    slow.write('PROXY TCP4 1.2.3.4 ');
    const started = Date.now();
    await slow.untilEnded();
    assert.ok(Date.now() - started >= 250, 'closed before --proxy-timeout');
    assert.equal(slow.text, '');
    assert.equal(await proxyRefusals(httpPort, 5), 5);
    assert.equal((await store.read(0, 10)).length, 0);

    // Untrusted: 127.0.0.1 is outside --proxy-allow 10.0.0.0/8 (no traffic goes to 10.x).
    const strict = await serve({ httpPort: 0, proxyAllow: ['10.0.0.0/8'] });
    const client = await open(strict.server.port);
    client.write(Buffer.concat([proxyV1(CLIENT, DESTINATION), Buffer.from(SESSION, 'latin1')]));
    await client.untilEnded();
    assert.equal(client.text, '');
    const strictHttp = (strict.server as unknown as { httpPort: number }).httpPort;
    assert.equal(await proxyRefusals(strictHttp, 1), 1);
    assert.equal((await strict.store.read(0, 10)).length, 0);
  });

  for (const mode of ['event-loop', 'sequential', 'fork', 'cluster', 'threads'] as const) {
    it(`stores the header's client as peer in ${mode} mode`, async () => {
      const { server, store } = await serve({ mode });
      const client = await session(server.port, proxyV2({ source: CLIENT }));
      assert.equal(client.text, REPLIES);
      const [record] = await records(store);
      assert.equal(record!.peer, '203.0.113.7:40001');
      assert.equal(record!.proxy, `127.0.0.1:${client.socket.localPort}`);
    });
  }

  /** A connection that sends a header naming `address` and HELO; its first reply. */
  async function helo(port: number, address: string, sourcePort: number): Promise<RawClient> {
    const client = await open(port);
    client.write(
      Buffer.concat([proxyV1({ address, port: sourcePort }, DESTINATION), Buffer.from('HELO\r\n')]),
    );
    await client.until(() => client.text.endsWith('\r\n') || client.isEnded);
    return client;
  }

  for (const mode of ['event-loop', 'cluster', 'fork', 'threads'] as const) {
    it(`${mode} mode: the per-IP limit counts the header's client, and a refusal frees its slot`, async () => {
      const { server } = await serve({ mode, maxConnections: 3, maxConnectionsPerIp: 1 });
      const first = await helo(server.port, '198.51.100.1', 1);
      const second = await helo(server.port, '198.51.100.2', 1);
      assert.equal(first.text, '100 OK\r\n');
      assert.equal(second.text, '100 OK\r\n');
      const third = await helo(server.port, '198.51.100.1', 2);
      await third.untilEnded();
      assert.equal(third.text, '503 BUSY\r\n');
      // The refused connection held a slot from accept; it gave it back.
      // (A fork-mode child gives it back only as its process exits, a moment later.)
      if (mode === 'fork') return;
      const fourth = await helo(server.port, '198.51.100.3', 1);
      assert.equal(fourth.text, '100 OK\r\n');
    });
  }

  for (const mode of ['event-loop', 'sequential', 'cluster'] as const) {
    it(`${mode} mode: connections still reading their header hold the --max-connections slots`, async () => {
      const { server, store } = await serve({ mode, maxConnections: 2 });
      const waiting = [await open(server.port), await open(server.port)];
      // Let both be accepted (in a cluster, by whichever worker) before the third comes.
      await delay(300);
      const third = await open(server.port);
      await third.untilEnded();
      assert.equal(third.text, '503 BUSY\r\n');
      for (const client of waiting) {
        assert.equal(client.isEnded, false);
        client.write(Buffer.concat([proxyV2({ source: CLIENT }), Buffer.from(SESSION, 'latin1')]));
        await client.untilEnded();
        assert.equal(client.text, REPLIES);
      }
      assert.equal((await records(store, 2)).length, 2);
    });
  }

  it('a connection whose header never comes gives its slot back at --proxy-timeout', async () => {
    const { server } = await serve({ maxConnections: 1, proxyTimeoutMs: 300 });
    const silent = await open(server.port);
    await delay(50);
    const refused = await open(server.port);
    await refused.untilEnded();
    assert.equal(refused.text, '503 BUSY\r\n');
    await silent.untilEnded();
    assert.equal(silent.text, '');
    const client = await session(server.port, proxyV1(CLIENT, DESTINATION));
    assert.equal(client.text, REPLIES);
  });
});
