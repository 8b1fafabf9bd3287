/**
 * The TCP driver against real loopback sockets: extension replies, ordering
 * while commits are pending, half-close, resets, and graceful shutdown.
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { startServer, type HeloServer, type StartServerOptions } from '../../src/server/server.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { delay, RawClient } from '../helpers/raw-client.js';
import { ControlledStore } from '../helpers/stores.js';

const OK = '100 OK\r\n';
const DRCV = '300 DRCV\r\n';
const BYE = '200 BYE\r\n';

describe('TCP connection', () => {
  let server: HeloServer | null = null;
  const clients: RawClient[] = [];

  async function start(options: Partial<StartServerOptions> = {}): Promise<HeloServer> {
    server = await startServer({
      port: 0,
      store: new MemoryStore(),
      logLevel: 'silent',
      ...options,
    });
    return server;
  }

  async function open(): Promise<RawClient> {
    const client = await RawClient.open(server!.port);
    clients.push(client);
    return client;
  }

  afterEach(async () => {
    for (const client of clients.splice(0)) client.close();
    await server?.close();
    server = null;
  });

  it('answers 408 TOUT and closes after the idle timeout', async () => {
    await start({ idleTimeoutMs: 150 });
    const client = await open();
    client.write('HELO\r\n');
    await client.untilEnded(3_000);
    assert.equal(client.text, OK + '408 TOUT\r\n');
  });

  it('times out a client that trickles bytes without ever ending a line', async () => {
    await start({ idleTimeoutMs: 300 });
    const client = await open();
    const trickle = setInterval(() => client.write('x'), 40);
    try {
      await client.untilEnded(3_000);
    } finally {
      clearInterval(trickle);
    }
    assert.equal(client.text, '408 TOUT\r\n');
  });

  it('keeps a client that sends lines alive past the idle timeout', async () => {
    await start({ idleTimeoutMs: 200 });
    const client = await open();
    for (let i = 0; i < 6; i++) {
      client.write('HELO\r\n');
      await delay(80);
    }
    assert.equal(client.isEnded, false);
    assert.equal(client.text, OK.repeat(6));
  });

  it('answers 503 BUSY and closes beyond the connection limit, before any other work', async () => {
    const running = await start({ maxConnections: 2 });
    const first = await open();
    const second = await open();
    const third = await open();
    third.write('HELO\r\n');
    await third.untilEnded();
    assert.equal(third.text, '503 BUSY\r\n');
    assert.equal(running.stats.rejected['max-connections'], 1);
    first.write('QUIT\r\n');
    await first.untilEnded();
    await delay(50);
    const fourth = await open();
    fourth.write('HELO\r\n');
    await fourth.untilBytes(OK.length);
    assert.equal(fourth.text, OK);
    second.write('HELO\r\n');
    await second.untilBytes(OK.length);
  });

  it('closes a refused connection soon even if it keeps sending', async () => {
    await start({ maxConnections: 1 });
    await open();
    // A client that keeps its side open after the server's FIN, and trickles.
    const refused = connect({ port: server!.port, host: '127.0.0.1', allowHalfOpen: true });
    refused.on('error', () => {});
    let received = '';
    refused.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
    const closed = new Promise((resolve) => refused.once('close', resolve));
    const trickle = setInterval(() => refused.writable && refused.write('x'), 100);
    try {
      const startedAt = Date.now();
      await Promise.race([closed, delay(4_000)]);
      assert.equal(refused.destroyed, true, 'the server must close a refused connection');
      assert.ok(Date.now() - startedAt < 4_000);
    } finally {
      clearInterval(trickle);
      refused.destroy();
    }
    assert.equal(received, '503 BUSY\r\n');
  });

  it('limits connections per client address', async () => {
    await start({ maxConnectionsPerIp: 1 });
    await open();
    const second = await open();
    await second.untilEnded();
    assert.equal(second.text, '503 BUSY\r\n');
  });

  it('answers 500 FAIL when the store cannot commit, and the session goes on', async () => {
    const store = new ControlledStore();
    await start({ store });
    const client = await open();
    store.isFailing = true;
    client.write('DATA lost\r\n');
    await client.untilBytes('500 FAIL\r\n'.length);
    store.isFailing = false;
    client.write('DATA kept\r\nQUIT\r\n');
    await client.untilEnded();
    assert.equal(client.text, '500 FAIL\r\n' + DRCV + BYE);
    assert.deepEqual(
      (await store.read(0, 10)).map((record) => record.payload.toString()),
      ['kept'],
    );
  });

  it('keeps replies in request order while a commit is pending', async () => {
    const store = new ControlledStore();
    await start({ store });
    const client = await open();
    store.isHolding = true;
    client.write('HELO\r\nDATA a\r\nHELO\r\nUSER\r\nDATA b\r\nHELO\r\n');
    await delay(50);
    // Nothing has left: the reply before the pending DATA came in the same
    // read, and waits to leave with it in one write (docs/PROTOCOL.md §5).
    assert.equal(client.text, '');
    assert.equal(store.heldCount, 2);
    store.release();
    await client.untilBytes((OK + DRCV + OK + '400 BCMD\r\n' + DRCV + OK).length);
    assert.equal(client.text, OK + DRCV + OK + '400 BCMD\r\n' + DRCV + OK);
  });

  it('stops reading a client once 1,024 replies wait behind a pending commit', async () => {
    const store = new ControlledStore();
    const running = await start({ store });
    const client = await open();
    store.isHolding = true;
    client.write('DATA held\r\n' + 'HELO\r\n'.repeat(5_000));
    const connection = (): { isPaused: boolean } => [...running.connections][0]!;
    const deadline = Date.now() + 2_000;
    while (!connection().isPaused && Date.now() < deadline) await delay(5);
    assert.equal(connection().isPaused, true, 'reading paused while replies pile up');
    assert.equal(client.text, '', 'nothing leaves before the pending commit');
    store.release();
    await client.untilBytes(DRCV.length + 5_000 * OK.length);
    assert.equal(connection().isPaused, false, 'reading resumes once the commit is answered');
  });

  it('answers a DATA whose commit is pending after the client half-closes', async () => {
    const store = new ControlledStore();
    await start({ store });
    const client = await open();
    store.isHolding = true;
    client.write('DATA last words\r\n');
    client.socket.end();
    await delay(50);
    store.release();
    await client.untilEnded();
    assert.equal(client.text, DRCV);
    assert.equal((await store.read(0, 10))[0]?.payload.toString(), 'last words');
  });

  it('survives a client reset in the middle of DATA', async () => {
    const store = new MemoryStore();
    const running = await start({ store });
    const client = await open();
    client.write('HELO\r\nDATA\r\nhalf a payl');
    await client.untilBytes(OK.length);
    client.socket.resetAndDestroy();
    await client.closed;
    await delay(50);
    assert.equal(running.connections.size, 0);
    assert.equal((await store.read(0, 10)).length, 0);
    const next = await open();
    next.write('DATA\r\nwhole\r\nQUIT\r\n');
    await next.untilEnded();
    assert.equal(next.text, DRCV + BYE);
  });

  it('survives a client reset while its commit is pending', async () => {
    const store = new ControlledStore();
    const running = await start({ store });
    const client = await open();
    store.isHolding = true;
    client.write('DATA orphan\r\n');
    await delay(30);
    client.socket.resetAndDestroy();
    await client.closed;
    store.release();
    await delay(50);
    assert.equal(running.connections.size, 0);
    // Stored but never acknowledged: allowed (protocol.md §4 only forbids the reverse).
    assert.equal((await store.read(0, 10)).length, 1);
  });

  it('survives EOF in the middle of DATA', async () => {
    const store = new MemoryStore();
    await start({ store });
    const client = await open();
    client.write('DATA\r\n');
    client.socket.end();
    await client.untilEnded();
    assert.equal(client.text, '');
    assert.equal((await store.read(0, 10)).length, 0);
  });

  it('on shutdown answers what was received, then 503 BUSY, and refuses newcomers', async () => {
    const store = new ControlledStore();
    const running = await start({ store });
    const idle = await open();
    const busy = await open();
    idle.write('HELO\r\n');
    await idle.untilBytes(OK.length);
    store.isHolding = true;
    busy.write('DATA in flight\r\n');
    await delay(30);
    const closing = running.close();
    await idle.untilEnded();
    assert.equal(idle.text, OK + '503 BUSY\r\n');
    store.release();
    await busy.untilEnded();
    assert.equal(busy.text, DRCV + '503 BUSY\r\n');
    await closing;
    await assert.rejects(RawClient.open(running.port), /ECONNREFUSED/);
    server = null;
  });

  it('cuts off sessions still busy when the shutdown grace period ends', async () => {
    const store = new ControlledStore();
    const running = await start({ store, shutdownGraceMs: 200 });
    const client = await open();
    store.isHolding = true;
    client.write('DATA never acknowledged\r\n');
    await delay(30);
    const startedAt = Date.now();
    await running.close();
    assert.ok(Date.now() - startedAt < 2_000);
    await client.untilEnded();
    assert.equal(client.text, '');
    server = null;
    store.release();
  });
});
