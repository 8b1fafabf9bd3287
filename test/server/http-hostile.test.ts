/**
 * The HTTP port against hostile clients (docs/SECURITY.md): odd request
 * targets, foreign `Host` headers (DNS rebinding), floods of idle
 * connections, `/events` subscribers that never read, and a request left
 * half-sent at shutdown. Each runs against a real `helo server` process, so
 * that a crash shows as a dead process.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { EventsStream } from '../../src/server/http/events-stream.js';
import { createLogger } from '../../src/server/logger.js';
import type { Insight } from '../../src/server/observe/observatory.js';
import type { DashboardSnapshot } from '../../src/server/observe/dashboard-snapshot.js';
import { RawClient, delay } from '../helpers/raw-client.js';
import { spawnWebServer, type WebServer } from '../../support/web-server.js';

const WS_UPGRADE =
  'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n' +
  'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n';

/** Sends raw bytes to the HTTP port; resolves with the status code of the answer (0: none). */
async function rawStatus(port: number, bytes: string, timeoutMs = 2_000): Promise<number> {
  const client = await RawClient.open(port);
  try {
    client.write(bytes);
    await client
      .until(() => client.isEnded || client.text.includes('\r\n\r\n'), timeoutMs)
      .catch(() => undefined);
    const match = /^HTTP\/1\.[01] (\d{3})/.exec(client.text);
    return match ? Number(match[1]) : 0;
  } finally {
    client.close();
  }
}

/** The process is alive, answers `/healthz`, and a protocol client gets `100 OK`. */
async function assertServes(web: WebServer, after: string): Promise<void> {
  const { child } = web.server;
  assert.equal(child.exitCode, null, `the server exited after ${after}`);
  assert.equal(child.signalCode, null, `the server was killed after ${after}`);
  const health = await rawStatus(
    web.httpPort,
    `GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:${web.httpPort}\r\nConnection: close\r\n\r\n`,
  );
  assert.equal(health, 200, `/healthz after ${after}`);
  const tcp = await RawClient.open(web.tcpPort);
  tcp.write('HELO\r\n');
  await tcp.until(() => tcp.text.includes('\r\n'), 2_000, `100 OK after ${after}`);
  assert.equal(tcp.text, '100 OK\r\n');
  tcp.close();
}

describe('HTTP request targets that are not a path', () => {
  let web: WebServer;
  before(async () => {
    web = await spawnWebServer();
  });
  after(() => web.server.stop());

  // Targets the server itself must answer 400 (Node's parser lets them through).
  const notPaths = [
    '//',
    '///',
    '/\\',
    '/\\evil.example/',
    '//x:99999/',
    '//[',
    '//evil.example/metrics',
    'http://evil/',
    'http://127.0.0.1/metrics',
    '*',
    '%',
    '/%',
    '/%zz',
    '/ws?token=%',
    'ws',
  ];
  // Targets Node's parser refuses before the server sees them: any 4xx is right.
  const unparsable = ['', '/\u00e9', '/a\u0000b', '/a b', `/${'a'.repeat(20_000)}`];

  for (const target of notPaths) {
    it(`answers 400 to GET ${JSON.stringify(target)} and to a /ws upgrade with it, and keeps serving`, async () => {
      const host = `Host: 127.0.0.1:${web.httpPort}\r\n`;
      assert.equal(await rawStatus(web.httpPort, `GET ${target} HTTP/1.1\r\n${host}\r\n`), 400);
      await assertServes(web, `GET ${target}`);
      assert.equal(
        await rawStatus(web.httpPort, `GET ${target} HTTP/1.1\r\n${host}${WS_UPGRADE}\r\n`),
        400,
      );
      await assertServes(web, `an upgrade to ${target}`);
    });
  }

  for (const target of unparsable) {
    it(`refuses GET ${JSON.stringify(target.slice(0, 20))} (${target.length} chars) and keeps serving`, async () => {
      const host = `Host: 127.0.0.1:${web.httpPort}\r\n`;
      for (const upgrade of ['', WS_UPGRADE]) {
        const status = await rawStatus(
          web.httpPort,
          `GET ${target} HTTP/1.1\r\n${host}${upgrade}\r\n`,
        );
        assert.ok(status >= 400 && status < 500, `status ${status}`);
        await assertServes(web, `GET ${JSON.stringify(target.slice(0, 20))}`);
      }
    });
  }
});

describe('the Host check (DNS rebinding) while no token is required', () => {
  let web: WebServer;
  before(async () => {
    web = await spawnWebServer();
  });
  after(() => web.server.stop());

  const get = (path: string, headers: string): Promise<number> =>
    rawStatus(web.httpPort, `GET ${path} HTTP/1.1\r\n${headers}Connection: close\r\n\r\n`);

  it('refuses a foreign Host with 421 on every path but the probes', async () => {
    const evil = 'Host: evil.example:7778\r\n';
    for (const path of ['/events', '/metrics', '/', '/index.html', '/nope']) {
      assert.equal(await get(path, evil), 421, path);
    }
    assert.equal(await get(`/metrics`, `Host: evil.example:${web.httpPort}\r\n`), 421);
    assert.equal(await get(`/metrics`, `Host: 127.0.0.1:1\r\n`), 421, 'another port');
    assert.equal(await get('/healthz', evil), 200);
    assert.equal(await get('/readyz', evil), 200);
    assert.equal(await get('/ws', `${evil}${WS_UPGRADE}`), 421);
  });

  it('refuses a request without Host', async () => {
    const status = await rawStatus(web.httpPort, 'GET /metrics HTTP/1.0\r\n\r\n');
    assert.equal(status, 421);
    assert.equal(await rawStatus(web.httpPort, 'GET /metrics HTTP/1.1\r\n\r\n'), 400);
  });

  it("serves the server's own names, in any case, on /metrics and /ws", async () => {
    for (const name of ['127.0.0.1', 'localhost', 'LocalHost', '[::1]']) {
      const host = `Host: ${name}:${web.httpPort}\r\n`;
      assert.equal(await get('/metrics', host), 200, name);
      assert.equal(await get('/ws', `${host}${WS_UPGRADE}`), 101, `${name} /ws`);
    }
  });
});

describe('HTTP connections and --max-connections', () => {
  let web: WebServer;
  before(async () => {
    // --idle-timeout 1 makes the HTTP idle time 1 s (it is at most 10 s).
    web = await spawnWebServer([
      '--store',
      'memory:',
      '--max-connections',
      '20',
      '--idle-timeout',
      '1',
    ]);
  });
  after(() => web.server.stop());

  it('holds at most 20 idle HTTP connections of 50, refuses protocol clients at the limit, and frees the places after the idle time', async () => {
    const idle = await Promise.all(Array.from({ length: 50 }, () => RawClient.open(web.httpPort)));
    try {
      await delay(300);
      const held = idle.filter((client) => !client.isEnded);
      assert.ok(held.length <= 20, `${held.length} idle HTTP connections held`);
      const refused = idle.filter((client) => client.text.startsWith('HTTP/1.1 503'));
      assert.ok(refused.length >= 30, `${refused.length} answered 503`);
      // One pool for protocol and HTTP connections: a protocol client is refused too.
      const tcp = await RawClient.open(web.tcpPort);
      await tcp.untilEnded();
      assert.equal(tcp.text, '503 BUSY\r\n');
      // The idle ones are closed after 1 s; their places come back.
      await Promise.all(held.map((client) => client.untilEnded(3_000)));
      assert.equal(web.server.child.exitCode, null);
      await assertServes(web, 'the idle connections');
      const metrics = await rawMetrics(web.httpPort);
      assert.match(metrics, /^helo_http_idle_closes_total (2\d|[3-9]\d)$/m);
      assert.match(metrics, /^helo_connections_rejected_total\{reason="max-connections"\} (3\d)$/m);
    } finally {
      for (const client of idle) client.close();
    }
  });
});

async function rawMetrics(port: number): Promise<string> {
  const client = await RawClient.open(port);
  client.write(`GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nConnection: close\r\n\r\n`);
  await client.untilEnded();
  client.close();
  return client.text;
}

/** A socket that asks for /events and then never reads. */
async function silentSubscriber(port: number): Promise<Socket> {
  const socket = connect({ host: '127.0.0.1', port });
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  socket.pause();
  socket.write(`GET /events HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  return socket;
}

describe('/events subscribers that do not read', () => {
  let web: WebServer;
  before(async () => {
    web = await spawnWebServer();
  });
  after(() => web.server.stop());

  it('cannot lock a new dashboard out: the 65th gets its snapshot', async () => {
    const silent: Socket[] = [];
    try {
      for (let i = 0; i < 64; i++) silent.push(await silentSubscriber(web.httpPort));
      await delay(200);
      const dashboard = await RawClient.open(web.httpPort);
      dashboard.write(`GET /events HTTP/1.1\r\nHost: 127.0.0.1:${web.httpPort}\r\n\r\n`);
      await dashboard.until(() => dashboard.text.includes('event: snapshot'), 5_000, 'a snapshot');
      assert.match(dashboard.text, /^HTTP\/1\.1 200/);
      dashboard.close();
      assert.match(await rawMetrics(web.httpPort), /^helo_events_cut_offs_total [1-9]/m);
    } finally {
      for (const socket of silent) socket.destroy();
    }
  });

  it('cuts off a subscriber once a few snapshots wait unsent for it', async () => {
    // Big snapshots, fast: the loopback buffers fill within a second or two.
    const big = { filler: 'x'.repeat(256 * 1024) } as unknown as DashboardSnapshot;
    const insight: Insight = {
      metrics: () => Promise.resolve(''),
      snapshot: () => Promise.resolve(big),
      storeWritable: () => Promise.resolve(true),
    };
    let cutOffs = 0;
    const stream = new EventsStream(insight, createLogger('silent'), 10, () => cutOffs++);
    const server: Server = createServer((_request, response) => stream.subscribe(response));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const socket = await silentSubscriber(port);
    try {
      const deadline = Date.now() + 10_000;
      while (cutOffs === 0 && Date.now() < deadline) await delay(50);
      assert.equal(cutOffs, 1);
    } finally {
      socket.destroy();
      stream.closeAll();
      server.close();
    }
  });
});

describe('shutdown with a half-sent HTTP request', () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'helo-http-'));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('exits 0 at once on SIGTERM and closes the store', async () => {
    const db = join(dir, 'store.db');
    const web = await spawnWebServer(['--store', `sqlite:${db}`]);
    const half = await RawClient.open(web.httpPort);
    half.write(`GET / HTTP/1.1\r\nHost: 127.0.0.1:${web.httpPort}`);
    const tcp = await RawClient.open(web.tcpPort);
    tcp.write('DATA kept\r\n');
    await tcp.until(() => tcp.text === '300 DRCV\r\n');
    tcp.close();
    await delay(50);
    const started = Date.now();
    const code = await web.server.stop('SIGTERM');
    const took = Date.now() - started;
    half.close();
    assert.equal(code, 0);
    assert.ok(took < 2_000, `shutdown took ${took} ms`);
    assert.match(web.server.stderr(), /"msg":"server closed"/);
    // A store closed cleanly leaves no write-ahead log behind.
    assert.equal(existsSync(`${db}-wal`), false, 'the -wal file is checkpointed away');
  });
});
