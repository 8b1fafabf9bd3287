/**
 * WebSocket on /ws (protocol.md §7): the shared vectors replayed one
 * message per line, the Origin check, what closes the WebSocket, the
 * connection limit, and the client library over ws://.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { connect } from '../../src/client/client.js';
import { startServer, type HeloServer } from '../../src/server/server.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { upgradeStatus } from '../helpers/http-client.js';
import { bytes, loadVectors, segmentsOf, type Vector } from '../helpers/vectors.js';

interface WsSession {
  readonly ws: WebSocket;
  readonly messages: string[];
  readonly closed: Promise<{ code: number }>;
}

async function openWs(url: string, origin?: string): Promise<WsSession> {
  const ws = new WebSocket(url, origin === undefined ? {} : { origin });
  const messages: string[] = [];
  ws.on('message', (data) => messages.push(data.toString('latin1')));
  const closed = new Promise<{ code: number }>((resolve) =>
    ws.once('close', (code) => resolve({ code })),
  );
  await once(ws, 'open');
  return { ws, messages, closed };
}

async function until(predicate: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/**
 * Vectors that make sense one text message per line: no §9 silences, every
 * line terminated, and valid UTF-8 (a text message cannot carry other bytes;
 * the WebSocket library closes the connection with 1007 on them).
 */
function messageVectors(): Vector[] {
  return loadVectors().filter((vector) => {
    const segments = segmentsOf(vector);
    if (segments.some((segment) => segment === null)) return false;
    const input = Buffer.concat(segments as Buffer[]);
    const isUtf8 = Buffer.from(input.toString('utf8'), 'utf8').equals(input);
    return isUtf8 && input.length > 0 && input[input.length - 1] === 0x0a;
  });
}

describe('protocol vectors over WebSocket, one message per line', () => {
  const servers = new Map<string, { server: HeloServer; store: MemoryStore }>();
  before(async () => {
    for (const vector of messageVectors()) {
      const key = JSON.stringify(vector.options ?? {});
      if (servers.has(key)) continue;
      const store = new MemoryStore();
      const server = await startServer({
        port: 0,
        httpPort: 0,
        logLevel: 'silent',
        store,
        ...vector.options,
      });
      servers.set(key, { server, store });
    }
  });
  after(async () => {
    for (const { server } of servers.values()) await server.close();
  });

  for (const vector of messageVectors()) {
    it(vector.name, async () => {
      const { server, store } = servers.get(JSON.stringify(vector.options ?? {}))!;
      const lastId = (await store.read(0, 1_000_000)).at(-1)?.id ?? 0;
      const session = await openWs(`ws://127.0.0.1:${server.httpPort}/ws`);
      const input = Buffer.concat(segmentsOf(vector) as Buffer[]);
      for (let start = 0; start < input.length;) {
        const lf = input.indexOf(0x0a, start);
        // Sent as text: the line's bytes as they are (latin1 vectors are ASCII where it matters).
        session.ws.send(input.subarray(start, lf + 1), { binary: false });
        start = lf + 1;
      }
      const expected = vector.replies;
      if (vector.closes) {
        await session.closed;
      } else {
        await until(() => session.messages.join('').length >= expected.length, 'the replies');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.equal(session.messages.join(''), expected, 'replies');
      assert.ok(
        session.messages.every((m) => /^\d{3} [A-Z]+\r\n$/.test(m)),
        'one reply per message',
      );
      const records = await store.read(lastId, 1000);
      assert.deepEqual(
        records.map((record) => record.payload.toString('latin1')),
        vector.stored.map((payload) => bytes(payload).toString('latin1')),
      );
      session.ws.close();
      await session.closed;
    });
  }
});

describe('WebSocket upgrade and session rules', () => {
  let server: HeloServer;
  let store: MemoryStore;
  before(async () => {
    store = new MemoryStore();
    server = await startServer({
      port: 0,
      httpPort: 0,
      logLevel: 'silent',
      store,
      wsOrigins: ['https://lab.example.org'],
      maxConnections: 3,
    });
  });
  after(() => server.close());
  const url = (): string => `ws://127.0.0.1:${server.httpPort}/ws`;

  it('accepts no Origin (a program), its own origin and --ws-origin; refuses others with 403', async () => {
    assert.equal(await upgradeStatus(url()), 'open');
    assert.equal(await upgradeStatus(url(), `http://127.0.0.1:${server.httpPort}`), 'open');
    assert.equal(await upgradeStatus(url(), `http://localhost:${server.httpPort}`), 'open');
    assert.equal(await upgradeStatus(url(), 'https://lab.example.org'), 'open');
    assert.equal(await upgradeStatus(url(), 'https://evil.example'), 403);
    assert.equal(
      await upgradeStatus(url(), `http://127.0.0.1:${server.port}`),
      403,
      'another port is another origin',
    );
  });

  it('serves WebSocket on /ws only', async () => {
    assert.equal(await upgradeStatus(`ws://127.0.0.1:${server.httpPort}/other`), 404);
  });

  it('closes the WebSocket on a binary message or a message with an LF inside', async () => {
    const binary = await openWs(url());
    binary.ws.send(Buffer.from('HELO\r\n'), { binary: true });
    assert.equal((await binary.closed).code, 1003);
    const twoLines = await openWs(url());
    twoLines.ws.send('HELO\nHELO');
    assert.equal((await twoLines.closed).code, 1002);
    assert.deepEqual([...binary.messages, ...twoLines.messages], []);
  });

  it('closes the WebSocket (1009) on a message over its bound, and goes on serving', async () => {
    // The bound is the larger of --max-line + 2 and 1 MiB (docs/RELIABILITY.md).
    const huge = await openWs(url());
    huge.ws.send('x'.repeat((1 << 20) + 1));
    assert.equal((await huge.closed).code, 1009);
    const next = await openWs(url());
    next.ws.send('HELO\r\n');
    await until(() => next.messages.length === 1, 'a reply after the oversized message');
    assert.equal(next.messages[0], '100 OK\r\n');
    next.ws.close();
    await next.closed;
  });

  it('counts WebSockets against --max-connections (503 before the upgrade)', async () => {
    const held = await Promise.all([openWs(url()), openWs(url()), openWs(url())]);
    assert.equal(await upgradeStatus(url()), 503);
    for (const session of held) session.ws.close();
    await Promise.all(held.map((session) => session.closed));
    await until(() => server.stats.connectionsCurrent === 0, 'the slots to free up');
    assert.equal(await upgradeStatus(url()), 'open');
  });

  it('the client library speaks ws:// like tcp://', async () => {
    const client = await connect({ address: url() });
    assert.equal((await client.helo('browser-less')).line, '100 OK');
    // A bare DATA shares its payload's reply, as on TCP.
    const bare = client.send('DATA');
    assert.equal((await client.send('over ws')).line, '300 DRCV');
    assert.equal((await bare).line, '300 DRCV');
    await client.quit();
    assert.equal((await store.read(0, 100)).at(-1)?.name, 'browser-less');
  });
});
