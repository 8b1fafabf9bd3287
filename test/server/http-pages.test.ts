/**
 * The HTTP port besides /ws: /metrics (parsed, and seen to move with real
 * traffic over TCP, WebSocket and UDP), /healthz, /readyz (503 from the
 * first moment of shutdown, and while the store cannot commit), /events
 * (Server-Sent Events), and the answers to other paths and methods.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import http from 'node:http';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { connectUdp } from '../../src/client/udp-client.js';
import { Observatory } from '../../src/server/observe/observatory.js';
import { RecentRecords } from '../../src/server/observe/recent-records.js';
import { ServerCounters } from '../../src/server/observe/server-counters.js';
import type { DashboardSnapshot } from '../../src/server/observe/dashboard-snapshot.js';
import { startServer, type HeloServer } from '../../src/server/server.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { httpRequest } from '../helpers/http-client.js';
import { RawClient, delay } from '../helpers/raw-client.js';
import { spawnWebServer } from '../../support/web-server.js';

/** `name{a="b"}` -> value, for every sample line of a Prometheus text page. */
function parseMetrics(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?) (\S+)$/.exec(line);
    assert.ok(match, `not a Prometheus sample line: ${line}`);
    samples.set(match[1]!, Number(match[2]));
  }
  return samples;
}

/** Polls /metrics until `isDone` holds. */
async function metricsUntil(
  port: number,
  isDone: (metrics: Map<string, number>) => boolean,
): Promise<Map<string, number>> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const metrics = await metricsOf(port);
    if (isDone(metrics)) return metrics;
    if (Date.now() > deadline) throw new Error('metrics did not reach the expected values');
    await delay(20);
  }
}

/**
 * One scrape on a connection of its own, closed before this resolves: HTTP
 * connections take places among --max-connections, which some tests count.
 */
async function metricsOf(port: number): Promise<Map<string, number>> {
  const answer = await new Promise<{ status: number; type: string; body: string }>(
    (resolve, reject) => {
      const request = http.get({ host: '127.0.0.1', port, path: '/metrics', agent: false });
      request.on('error', reject);
      request.on('response', (response) => {
        let body = '';
        response.setEncoding('utf8').on('data', (text: string) => (body += text));
        response.socket.once('close', () =>
          resolve({
            status: response.statusCode ?? 0,
            type: String(response.headers['content-type']),
            body,
          }),
        );
      });
    },
  );
  assert.equal(answer.status, 200);
  assert.match(answer.type, /^text\/plain; version=0\.0\.4/);
  return parseMetrics(answer.body);
}

/** Reads Server-Sent Events from /events until `done` returns true for one snapshot. */
function watchEvents(
  port: number,
  done: (snapshot: DashboardSnapshot) => boolean,
  timeoutMs = 8_000,
): Promise<DashboardSnapshot> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      req.destroy();
      reject(new Error('no matching snapshot in time'));
    }, timeoutMs);
    const req = http.get({ host: '127.0.0.1', port, path: '/events' }, (response) => {
      assert.equal(response.statusCode, 200);
      assert.match(String(response.headers['content-type']), /^text\/event-stream/);
      let buffer = '';
      response.setEncoding('utf8').on('data', (text: string) => {
        buffer += text;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) !== -1) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = /^data: (.*)$/m.exec(event);
          if (!/^event: snapshot$/m.test(event) || data === null) continue;
          const snapshot = JSON.parse(data[1]!) as DashboardSnapshot;
          if (done(snapshot)) {
            clearTimeout(timer);
            req.destroy();
            resolve(snapshot);
          }
        }
      });
    });
    req.on('error', () => undefined);
  });
}

describe('/metrics, /healthz, /readyz and /events (in-process server)', () => {
  let server: HeloServer;
  let counters: ServerCounters;
  let httpPort: number;

  before(async () => {
    counters = new ServerCounters();
    server = await startServer({
      port: 0,
      httpPort: 0,
      udpPort: 0,
      maxConnections: 3,
      idleTimeoutMs: 300,
      logLevel: 'silent',
      counters,
      store: new MemoryStore({ onCommit: counters.onCommit }),
    });
    httpPort = server.httpPort!;
  });
  after(() => server.close());

  it('counts connections, replies, payloads, bytes and latencies as traffic happens', async () => {
    const before = await metricsOf(httpPort);
    for (const name of [
      'helo_connections_total{transport="tcp"}',
      'helo_connections_current{transport="ws"}',
      'helo_connections_rejected_total{reason="max-connections"}',
      'helo_replies_total{code="100"}',
      'helo_payloads_stored_total',
      'helo_bytes_received_total',
      'helo_bytes_sent_total',
      'helo_request_duration_seconds_count',
      'helo_store_commit_seconds_count',
      'helo_commit_batch_size_count',
      'process_resident_memory_bytes',
    ]) {
      assert.ok(before.has(name), `${name} is exported`);
    }

    const tcp = await RawClient.open(server.port);
    tcp.write('HELO alice\r\nDATA one\r\nDATA two\r\nNOPE\r\n');
    await tcp.until(() => tcp.text.split('\r\n').length > 4);
    const ws = new WebSocket(`ws://127.0.0.1:${httpPort}/ws`);
    await once(ws, 'open');
    const wsReply = once(ws, 'message');
    ws.send('HELO bob');
    await wsReply;
    const udp = await connectUdp({ host: '127.0.0.1', port: server.udpPort! });
    assert.equal((await udp.send('DATA over udp')).code, 300);
    udp.close();

    const during = await metricsOf(httpPort);
    const moved = (name: string): number => during.get(name)! - before.get(name)!;
    assert.equal(moved('helo_connections_total{transport="tcp"}'), 1);
    assert.equal(moved('helo_connections_total{transport="ws"}'), 1);
    assert.equal(moved('helo_connections_total{transport="udp"}'), 1);
    assert.equal(during.get('helo_connections_current{transport="tcp"}'), 1);
    assert.equal(during.get('helo_connections_current{transport="ws"}'), 1);
    assert.equal(moved('helo_replies_total{code="100"}'), 2);
    assert.equal(moved('helo_replies_total{code="300"}'), 3);
    assert.equal(moved('helo_replies_total{code="400"}'), 1);
    assert.equal(moved('helo_payloads_stored_total'), 3);
    // TCP as sent; WebSocket: one line per message, counted with its LF; UDP: the datagram.
    assert.equal(moved('helo_bytes_received_total'), 38 + 'HELO bob\n'.length + 15);
    assert.equal(moved('helo_bytes_sent_total'), tcp.receivedBytes + '100 OK\r\n'.length + 10);
    // UDP replies are counted, but their latency is the endpoint's own affair.
    assert.equal(moved('helo_request_duration_seconds_count'), 5);
    assert.ok(moved('helo_store_commit_seconds_count') >= 1);
    assert.ok(during.get('helo_server_resident_memory_bytes')! > 10 * 2 ** 20);
    assert.ok(during.get('helo_server_cpu_seconds_total')! > 0);
    assert.equal(moved('helo_commit_batch_size_sum'), 3);
    const buckets = [...during].filter(([name]) =>
      name.startsWith('helo_request_duration_seconds_bucket'),
    );
    assert.equal(buckets.at(-1)![0], 'helo_request_duration_seconds_bucket{le="+Inf"}');
    for (let i = 1; i < buckets.length; i++) assert.ok(buckets[i]![1] >= buckets[i - 1]![1]);

    // Two open (tcp, ws): a third is allowed by --max-connections 3, a fourth is refused.
    // HTTP connections share those places: the scrape's has just closed.
    await delay(20);
    const third = await RawClient.open(server.port);
    const fourth = await RawClient.open(server.port);
    await fourth.untilEnded();
    assert.equal(fourth.text, '503 BUSY\r\n');
    tcp.close();
    ws.close();
    third.close();
    // Places are given back as the server sees the closes; the scrapes below need one.
    while (server.stats.connectionsCurrent > 0) await delay(10);
    const after = await metricsUntil(
      httpPort,
      (m) =>
        m.get('helo_connections_current{transport="tcp"}') === 0 &&
        m.get('helo_connections_current{transport="ws"}') === 0,
    );
    assert.equal(
      after.get('helo_connections_rejected_total{reason="max-connections"}')! -
        before.get('helo_connections_rejected_total{reason="max-connections"}')!,
      1,
    );
  });

  it('counts long lines, idle timeouts and an HTTP request sent to the protocol port (§8)', async () => {
    const before = await metricsOf(httpPort);
    const long = await RawClient.open(server.port);
    long.write(`HELO ${'x'.repeat(9000)}\r\n`);
    await long.until(() => long.text.includes('401 LONG'));
    await long.untilEnded(); // 300 ms idle timeout: 408 TOUT
    assert.equal(long.text, '401 LONG\r\n408 TOUT\r\n');

    // A real HTTP client, pointed at the protocol port by mistake, gets no reply at all.
    await new Promise<void>((resolve) => {
      const req = http.get({ host: '127.0.0.1', port: server.port, path: '/' });
      req.on('response', () => assert.fail('the protocol port must not answer HTTP'));
      req.on('error', () => resolve());
      req.on('close', () => resolve());
    });
    const after = await metricsOf(httpPort);
    const moved = (name: string): number => after.get(name)! - before.get(name)!;
    assert.equal(moved('helo_long_lines_total'), 1);
    assert.equal(moved('helo_idle_timeouts_total'), 1);
    assert.equal(moved('helo_replies_total{code="408"}'), 1);
    assert.equal(moved('helo_cross_protocol_rejects_total'), 1);
  });

  it('streams dashboard snapshots on /events, with a connection and a safe preview', async () => {
    const client = await RawClient.open(server.port);
    client.write('HELO eve\r\nDATA <img src=x onerror=alert(1)>\x1b[31m\r\n');
    await client.until(() => client.text.includes('300 DRCV'));
    const snapshot = await watchEvents(httpPort, (s) => s.connections.current.tcp === 1);
    assert.equal(snapshot.mode, 'event-loop');
    assert.equal(snapshot.workers, 1);
    const record = snapshot.recent[0]!;
    assert.equal(record.name, 'eve');
    assert.equal(record.preview, '<img src=x onerror=alert(1)>·[31m', 'control bytes are replaced');
    assert.equal(record.size, 33);
    assert.equal(snapshot.latency.counts.length, snapshot.latency.boundsMs.length + 1);
    client.close();
    const later = await watchEvents(
      httpPort,
      (s) => s.connections.current.tcp === 0 && s.history.length > 0,
    );
    assert.ok(later.history.every((point) => typeof point.t === 'number'));
  });

  it('answers /healthz, other paths and methods plainly', async () => {
    assert.equal((await httpRequest(httpPort, '/healthz')).status, 200);
    assert.equal((await httpRequest(httpPort, '/nope')).status, 404);
    assert.equal((await httpRequest(httpPort, '/ws')).status, 426);
    const post = await httpRequest(httpPort, '/metrics', { method: 'POST' });
    assert.equal(post.status, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    const head = await httpRequest(httpPort, '/healthz', { method: 'HEAD' });
    assert.equal(head.status, 200);
    assert.equal(head.body, '');
    // HEAD on the live feed answers at once instead of holding a stream open.
    const events = await httpRequest(httpPort, '/events', { method: 'HEAD' });
    assert.equal(events.status, 200);
    assert.match(String(events.headers['content-type']), /^text\/event-stream/);
  });

  it('is not ready while the store cannot commit, and ready again once it can', async () => {
    assert.equal((await httpRequest(httpPort, '/readyz')).status, 200);
    counters.onCommit({ records: 1, durationMs: 1, ok: false });
    const failed = await httpRequest(httpPort, '/readyz');
    assert.equal(failed.status, 503);
    assert.match(failed.body, /store/);
    counters.onCommit({ records: 1, durationMs: 1, ok: true });
    assert.equal((await httpRequest(httpPort, '/readyz')).status, 200);
  });
});

describe('readiness after a failed commit', () => {
  it('comes back after the retry time even without a commit, so traffic can try the store again', async () => {
    const counters = new ServerCounters();
    const observatory = new Observatory({
      mode: 'event-loop',
      workers: () => 1,
      collect: () => Promise.resolve(counters.toData()),
      recent: new RecentRecords(),
      retryReadyAfterMs: 200,
    });
    try {
      assert.equal(await observatory.storeWritable(), true);
      counters.onCommit({ records: 3, durationMs: 5, ok: false });
      assert.equal(await observatory.storeWritable(), false);
      await delay(250);
      assert.equal(await observatory.storeWritable(), true, 'half-open: try again');
      counters.onCommit({ records: 1, durationMs: 5, ok: false });
      assert.equal(await observatory.storeWritable(), false, 'a new failure closes it again');
      counters.onCommit({ records: 1, durationMs: 5, ok: true });
      assert.equal(await observatory.storeWritable(), true);
    } finally {
      observatory.close();
    }
  });
});

describe('/readyz during shutdown', () => {
  it('answers 503 from the first moment of shutdown, while sessions finish', async () => {
    const server = await startServer({
      port: 0,
      httpPort: 0,
      workMs: 600,
      logLevel: 'silent',
      store: new MemoryStore(),
    });
    const httpPort = server.httpPort!;
    assert.equal((await httpRequest(httpPort, '/readyz')).status, 200);
    // A request in progress keeps the session (and the shutdown) busy for 600 ms.
    const busy = await RawClient.open(server.port);
    busy.write('HELO\r\n');
    await delay(50);
    const closed = server.close();
    const during = await httpRequest(httpPort, '/readyz');
    assert.equal(during.status, 503);
    assert.equal(during.body, 'shutting down\n');
    assert.equal((await httpRequest(httpPort, '/healthz')).status, 200, 'still alive meanwhile');
    await busy.untilEnded();
    assert.equal(busy.text, '100 OK\r\n503 BUSY\r\n');
    await closed;
  });
});

describe('/metrics in cluster mode', () => {
  it('covers every worker', async () => {
    const { server, httpPort } = await spawnWebServer([
      '--store',
      'memory:',
      '--mode',
      'cluster',
      '--workers',
      '2',
    ]);
    try {
      const sessions = 12;
      await Promise.all(
        Array.from({ length: sessions }, async () => {
          const client = await RawClient.open(server.port);
          client.write('HELO\r\nDATA x\r\nQUIT\r\n');
          await client.untilEnded();
        }),
      );
      const metrics = await metricsOf(httpPort);
      assert.equal(metrics.get('helo_connections_total{transport="tcp"}'), sessions);
      assert.equal(metrics.get('helo_replies_total{code="100"}'), sessions);
      assert.equal(metrics.get('helo_replies_total{code="200"}'), sessions);
      assert.equal(metrics.get('helo_payloads_stored_total'), sessions);
      // Commits happen in the primary, which owns the store.
      assert.equal(metrics.get('helo_commit_batch_size_sum'), sessions);
      // process_* are the primary's own; helo_server_* add the workers' to it.
      assert.ok(
        metrics.get('helo_server_resident_memory_bytes')! >
          1.5 * metrics.get('process_resident_memory_bytes')!,
        'the memory of three processes, not one',
      );
      const snapshot = await watchEvents(httpPort, (s) => s.payloadsStored === sessions);
      assert.equal(snapshot.mode, 'cluster');
      assert.equal(snapshot.workers, 2);
      assert.equal(snapshot.recent.length, sessions);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });
});
