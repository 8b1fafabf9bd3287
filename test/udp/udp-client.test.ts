/**
 * The UDP client library against the real UDP endpoint, directly and
 * through a lossy relay that drops (or delays) datagrams both ways: the
 * retries, their limit and its error, at-least-once DATA, and replies that
 * arrive late never being taken for the reply to a later request. Plus
 * raw UDP servers scripted to misbehave (silent, garbage).
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { afterEach, describe, it } from 'node:test';
import { pino } from 'pino';
import {
  connectUdp,
  retrySchedule,
  type UdpClient,
  type UdpConnectOptions,
} from '../../src/client/udp-client.js';
import {
  AbortError,
  ClosedError,
  ConnectError,
  type HeloError,
  InvalidArgumentError,
  InvalidOptionError,
  ReplyError,
  TimeoutError,
} from '../../src/errors.js';
import { UdpEndpoint } from '../../src/server/transports/udp.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { Store } from '../../src/store/store.js';
import { ControlledStore } from '../helpers/stores.js';
import { LossyRelay, seededDrops, type Decide } from './lossy-relay.js';

const BOUNDED = { timeout: 30_000 };

function isHeloError(type: new (...args: never[]) => HeloError, pattern?: RegExp) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
    if (pattern) assert.match(error.message, pattern);
    return true;
  };
}

async function payloads(store: Store): Promise<string[]> {
  return (await store.read(0, 100_000)).map((record) => record.payload.toString('latin1'));
}

/** A UDP socket on 127.0.0.1 that reads everything and answers as `answer` says. */
async function rawUdpServer(answer: (datagram: Buffer) => Buffer | null = () => null) {
  const socket = dgram.createSocket('udp4');
  const received: { datagram: Buffer; port: number }[] = [];
  socket.on('message', (datagram, peer) => {
    received.push({ datagram, port: peer.port });
    const reply = answer(datagram);
    if (reply !== null) socket.send(reply, peer.port, peer.address);
  });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  return {
    port: socket.address().port,
    received,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

/** A port on which nothing listens for UDP (it was free a moment ago). */
async function closedUdpPort(): Promise<number> {
  const socket = dgram.createSocket('udp4');
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

describe('retrySchedule', () => {
  it('doubles from firstTryMs and gives the last try what is left of timeoutMs', () => {
    assert.deepEqual(retrySchedule(10_000, 4, 250), [250, 500, 1000, 2000, 6250]);
    assert.deepEqual(retrySchedule(10_000, 0, 250), [10_000]);
  });

  it('shrinks the first wait when the doubling tries would not fit', () => {
    const waits = retrySchedule(1_000, 4, 250);
    assert.deepEqual(waits, [32, 64, 129, 258, 517]);
    assert.ok(waits.reduce((sum, wait) => sum + wait) <= 1_000);
  });

  it('with no limit, the last try waits forever', () => {
    assert.deepEqual(retrySchedule(0, 2, 100), [100, 200, Number.POSITIVE_INFINITY]);
  });
});

describe('UdpClient', BOUNDED, () => {
  const cleanups: (() => Promise<void>)[] = [];
  afterEach(async () => {
    for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
  });

  async function startEndpoint(store: Store = new MemoryStore(), maxLineBytes = 8192) {
    const state = { isShuttingDown: false };
    let counter = 0;
    const endpoint = await UdpEndpoint.bind(
      { host: '127.0.0.1', port: 0, maxLineBytes },
      {
        store,
        logger: pino({ level: 'silent' }),
        newSessionId: () => `s${++counter}`,
        isShuttingDown: () => state.isShuttingDown,
      },
    );
    cleanups.push(() => endpoint.close());
    return { endpoint, store, state };
  }

  async function client(options: UdpConnectOptions): Promise<UdpClient> {
    const udp = await connectUdp(options);
    cleanups.push(() => udp.close());
    return udp;
  }

  async function relay(port: number, decide?: Decide): Promise<LossyRelay> {
    const lossy = await LossyRelay.start({ target: { host: '127.0.0.1', port }, decide });
    cleanups.push(() => lossy.close());
    return lossy;
  }

  describe('against the endpoint', () => {
    it('helo, data, quit and send, with their replies', async () => {
      const { endpoint, store } = await startEndpoint();
      const udp = await client({ port: endpoint.port });
      assert.equal(udp.address, `127.0.0.1:${endpoint.port}`);
      assert.equal(udp.url, `udp://127.0.0.1:${endpoint.port}`);
      assert.deepEqual(await udp.helo(), { code: 100, token: 'OK', line: '100 OK' });
      assert.equal((await udp.helo('lab')).line, '100 OK');
      assert.equal((await udp.data('Hello world')).line, '300 DRCV');
      assert.equal((await udp.quit()).line, '200 BYE');
      // QUIT ends nothing over UDP: the client (and the server) go on.
      assert.equal(udp.isOpen, true);
      assert.equal((await udp.data('after quit')).line, '300 DRCV');
      assert.equal((await udp.send('USER')).line, '400 BCMD');
      assert.equal((await udp.send('DATA\nraw form')).line, '300 DRCV');
      assert.equal((await udp.send('DATA')).line, '400 BCMD', 'a bare DATA alone');
      assert.deepEqual(await payloads(store), ['Hello world', 'after quit', 'raw form']);
      assert.deepEqual(
        (await store.read(0, 10)).map((record) => record.name),
        [null, null, null],
      );
    });

    it('stores any payload byte for byte: empty, blanks, CR at the end, NUL, invalid UTF-8', async () => {
      const { endpoint, store } = await startEndpoint();
      const udp = await client({ port: endpoint.port });
      const sent = [
        Buffer.alloc(0),
        Buffer.from('   '),
        Buffer.from('\t lead'),
        Buffer.from('ends in CR\r'),
        Buffer.from([0x00, 0xff, 0x80, 0xc3, 0x28]),
        Buffer.from('QUIT'),
        Buffer.from('GET / HTTP/1.1'),
      ];
      for (const payload of sent) assert.equal((await udp.data(payload)).code, 300);
      assert.deepEqual(
        (await store.read(0, 100)).map((record) => record.payload),
        sent,
      );
    });

    it('sends the requests of concurrent calls one at a time, in call order, each from its own port', async () => {
      const { endpoint, store } = await startEndpoint();
      const udp = await client({ port: endpoint.port });
      const calls = ['1', '2', '3', '4', '5'].map((payload) => udp.data(payload));
      assert.equal(udp.pending, 5);
      await Promise.all(calls);
      assert.equal(udp.pending, 0);
      assert.deepEqual(await payloads(store), ['1', '2', '3', '4', '5']);
      const peers = (await store.read(0, 10)).map((record) => record.peer);
      assert.equal(new Set(peers).size, 5, 'a fresh socket per request');
    });

    it('rejects with ReplyError on 500 FAIL, 401 LONG and 503 BUSY', async () => {
      const store = new ControlledStore();
      const { endpoint, state } = await startEndpoint(store, 16);
      const udp = await client({ port: endpoint.port });
      store.isFailing = true;
      await assert.rejects(udp.data('x'), (error: unknown) => {
        assert.ok(error instanceof ReplyError);
        assert.equal(error.reply.line, '500 FAIL');
        assert.equal(error.message, 'expected 300 DRCV, server replied 500 FAIL');
        return true;
      });
      store.isFailing = false;
      await assert.rejects(udp.data('y'.repeat(17)), isHeloError(ReplyError, /401 LONG/));
      await assert.rejects(udp.helo('n'.repeat(20)), isHeloError(ReplyError, /401 LONG/));
      state.isShuttingDown = true;
      await assert.rejects(udp.helo(), isHeloError(ReplyError, /expected 100 OK.*503 BUSY/));
      assert.equal((await udp.send('HELO')).line, '503 BUSY', 'send() takes any reply');
    });

    it('refuses what one datagram cannot carry, before sending anything', async () => {
      const { endpoint } = await startEndpoint();
      const udp = await client({ port: endpoint.port });
      await assert.rejects(udp.data('a\nb'), isHeloError(InvalidArgumentError, /LF/));
      await assert.rejects(udp.helo('a\r'), isHeloError(InvalidArgumentError, /CR or LF/));
      await assert.rejects(
        udp.data(Buffer.alloc(70_000, 0x61)),
        isHeloError(InvalidArgumentError, /does not fit in one UDP datagram/),
      );
      assert.equal(endpoint.stats.datagramsIn, 0);
    });
  });

  describe('options', () => {
    it('are checked', async () => {
      const bad: [UdpConnectOptions, RegExp][] = [
        [{ port: 0 }, /port must be/],
        [{ port: 70_000 }, /port must be/],
        [{ port: 7779, host: '' }, /host must be/],
        [{ port: 7779, retries: -1 }, /retries must be/],
        [{ port: 7779, retries: 1.5 }, /retries must be/],
        [{ port: 7779, timeoutMs: -5 }, /timeoutMs must be/],
        [{ port: 7779, firstTryMs: 0 }, /firstTryMs must be/],
        [{ port: 7779, waitMs: Number.NaN }, /waitMs must be/],
      ];
      for (const [options, pattern] of bad) {
        await assert.rejects(connectUdp(options), isHeloError(InvalidOptionError, pattern));
      }
    });

    it('an unknown host is a ConnectError', async () => {
      await assert.rejects(
        connectUdp({ host: 'no-such-host.invalid', port: 7779 }),
        isHeloError(ConnectError, /cannot resolve host 'no-such-host.invalid'/),
      );
    });

    it('resolves a host name once', async () => {
      const { endpoint } = await startEndpoint();
      const udp = await client({ host: 'localhost', port: endpoint.port });
      assert.equal(udp.url, `udp://localhost:${endpoint.port}`);
      // localhost may resolve to ::1 while the endpoint is on 127.0.0.1: then nothing listens.
      try {
        assert.equal((await udp.helo()).code, 100);
      } catch (error) {
        assert.ok(error instanceof ConnectError);
      }
    });
  });

  describe('retries', () => {
    it('a lost request is sent again, and the payload is stored once', async () => {
      const { endpoint, store } = await startEndpoint();
      const lossy = await relay(endpoint.port, (direction, index) =>
        direction === 'to-server' && index === 0 ? 'drop' : 'forward',
      );
      const udp = await client({ port: lossy.port, firstTryMs: 50 });
      assert.equal((await udp.data('once')).code, 300);
      assert.equal(lossy.counts['to-server'].dropped, 1);
      assert.equal(lossy.counts['to-server'].forwarded, 1);
      assert.deepEqual(await payloads(store), ['once']);
    });

    it('a lost 300 DRCV means a second copy: DATA is at-least-once', async () => {
      const { endpoint, store } = await startEndpoint();
      const lossy = await relay(endpoint.port, (direction, index) =>
        direction === 'to-client' && index === 0 ? 'drop' : 'forward',
      );
      const udp = await client({ port: lossy.port, firstTryMs: 50 });
      assert.equal((await udp.data('twice')).code, 300);
      assert.equal(lossy.counts['to-client'].dropped, 1);
      // The retry is a new datagram, identical to the first, and the server
      // cannot tell it from a second DATA: both are stored (docs/UDP.md).
      assert.deepEqual(await payloads(store), ['twice', 'twice']);
      const [first, second] = await store.read(0, 2);
      assert.equal(first!.peer, second!.peer, 'both tries came from the same request socket');
      assert.notEqual(first!.session, second!.session);
    });

    it('every payload arrives, at least once and in call order, through 20% loss both ways', async () => {
      const { endpoint, store } = await startEndpoint();
      const lossy = await relay(endpoint.port, seededDrops(20_240_601, 0.2));
      const udp = await client({
        port: lossy.port,
        firstTryMs: 50,
        retries: 10,
        timeoutMs: 60_000,
      });
      const sent = Array.from({ length: 40 }, (_, i) => `payload-${i}`);
      for (const payload of sent) assert.equal((await udp.data(payload)).code, 300);

      const stored = await payloads(store);
      // Exactly one record per DATA datagram that reached the server.
      assert.equal(stored.length, lossy.counts['to-server'].forwarded);
      assert.ok(lossy.counts['to-server'].dropped > 0 && lossy.counts['to-client'].dropped > 0);
      // Every payload at least once (more where a reply was lost or late).
      const firstSeen = sent.map((payload) => stored.indexOf(payload));
      assert.ok(
        firstSeen.every((index) => index >= 0),
        'every payload stored',
      );
      assert.deepEqual(
        [...firstSeen].sort((a, b) => a - b),
        firstSeen,
        'first copies in call order',
      );
    });

    it('a late reply never answers a later request: each request has its own socket', async () => {
      const { endpoint, store } = await startEndpoint();
      // The first 300 DRCV comes 300 ms late, after the retry's own reply;
      // the HELO's replies come 350 ms late, so it is still waiting when
      // that stale 300 DRCV arrives.
      const lossy = await relay(endpoint.port, (direction, index) => {
        if (direction === 'to-server' || index === 1) return 'forward';
        return { delayMs: index === 0 ? 300 : 350 };
      });
      const udp = await client({ port: lossy.port, firstTryMs: 50 });
      const started = performance.now();
      assert.equal((await udp.data('slow')).code, 300);
      assert.equal((await udp.helo()).line, '100 OK');
      assert.ok(performance.now() - started >= 380, 'the HELO was waiting at 300 ms');
      assert.ok(lossy.counts['to-client'].forwarded >= 3, 'the stale reply was delivered');
      // Its retry was stored too: at-least-once.
      assert.deepEqual(await payloads(store), ['slow', 'slow']);
    });

    it('all tries lost: TimeoutError saying how many tries over how long to where', async () => {
      const { endpoint, store } = await startEndpoint();
      const lossy = await relay(endpoint.port, () => 'drop');
      const udp = await client({ port: lossy.port, timeoutMs: 600, retries: 3, firstTryMs: 50 });
      const started = performance.now();
      await assert.rejects(
        udp.data('lost'),
        isHeloError(
          TimeoutError,
          new RegExp(
            `^no reply from udp://127\\.0\\.0\\.1:${lossy.port} to DATA after 4 tries over \\d+ ms; ` +
              'the payload may or may not have been stored$',
          ),
        ),
      );
      const elapsed = performance.now() - started;
      assert.ok(elapsed >= 590 && elapsed < 1_500, `took ${elapsed} ms`);
      assert.equal(lossy.counts['to-server'].dropped, 4);
      assert.deepEqual(await payloads(store), []);
      // The client is still usable once the network is back.
      lossy.decide = () => 'forward';
      assert.equal((await udp.helo()).code, 100);
    });

    it('sends identical tries from one socket, then a new socket for the next request', async () => {
      const silent = await rawUdpServer();
      cleanups.push(silent.close);
      const udp = await client({ port: silent.port, timeoutMs: 300, retries: 2, firstTryMs: 30 });
      await assert.rejects(udp.helo('x'), isHeloError(TimeoutError, /to HELO after 3 tries/));
      await assert.rejects(udp.quit(), isHeloError(TimeoutError, /to QUIT after 3 tries/));
      const helos = silent.received.slice(0, 3);
      const quits = silent.received.slice(3);
      assert.equal(quits.length, 3);
      for (const { datagram } of helos) assert.equal(datagram.toString(), 'HELO x\r\n');
      for (const { datagram } of quits) assert.equal(datagram.toString(), 'QUIT\r\n');
      assert.equal(new Set(helos.map((entry) => entry.port)).size, 1);
      assert.equal(new Set(quits.map((entry) => entry.port)).size, 1);
      assert.notEqual(helos[0]!.port, quits[0]!.port);
    });

    it('retries: 0 sends once', async () => {
      const silent = await rawUdpServer();
      cleanups.push(silent.close);
      const udp = await client({ port: silent.port, timeoutMs: 100, retries: 0 });
      await assert.rejects(udp.data('x'), isHeloError(TimeoutError, /after 1 try over/));
      assert.equal(silent.received.length, 1);
    });
  });

  describe('failures', () => {
    it('nothing listening is a ConnectError at once', async () => {
      const port = await closedUdpPort();
      const udp = await client({ port, timeoutMs: 5_000 });
      const started = performance.now();
      await assert.rejects(
        udp.helo(),
        isHeloError(
          ConnectError,
          new RegExp(
            `^nothing is listening at udp://127\\.0\\.0\\.1:${port} \\(port unreachable\\) — is the server running with --udp-port\\?$`,
          ),
        ),
      );
      assert.ok(performance.now() - started < 1_000);
    });

    it('waitMs keeps trying while nothing listens, until the server is up', async () => {
      const port = await closedUdpPort();
      const store = new MemoryStore();
      const udp = await client({ port, waitMs: 3_000, timeoutMs: 2_000 });
      setTimeout(() => {
        void UdpEndpoint.bind(
          { host: '127.0.0.1', port, maxLineBytes: 100 },
          {
            store,
            logger: pino({ level: 'silent' }),
            newSessionId: () => 'late',
            isShuttingDown: () => false,
          },
        ).then((endpoint) => cleanups.push(() => endpoint.close()));
      }, 300);
      assert.equal((await udp.data('waited')).code, 300);
      assert.deepEqual(await payloads(store), ['waited']);
    });

    it('waitMs over: a ConnectError that says how long it tried', async () => {
      const port = await closedUdpPort();
      const udp = await client({ port, waitMs: 200 });
      await assert.rejects(udp.helo(), isHeloError(ConnectError, /kept trying for 200 ms\)$/));
    });

    it('a datagram that is not a helo reply fails the request', async () => {
      const garbage = await rawUdpServer(() => Buffer.from('SSH-2.0-OpenSSH\r\n'));
      cleanups.push(garbage.close);
      const udp = await client({ port: garbage.port });
      await assert.rejects(
        udp.helo(),
        isHeloError(ClosedError, /answered with something that is not a helo reply: "SSH-2.0/),
      );
    });

    it('close() rejects the request in flight and those waiting, then every later call', async () => {
      const silent = await rawUdpServer();
      cleanups.push(silent.close);
      const udp = await client({ port: silent.port });
      const inFlight = udp.data('a');
      const waiting = udp.helo();
      await new Promise((resolve) => setTimeout(resolve, 50));
      await udp.close();
      await assert.rejects(inFlight, isHeloError(ClosedError, /closed by close\(\)/));
      await assert.rejects(waiting, isHeloError(ClosedError, /the client is closed/));
      await assert.rejects(udp.helo(), isHeloError(ClosedError));
      assert.equal(udp.isOpen, false);
    });

    it('a request signal aborts that request only', async () => {
      const silent = await rawUdpServer((datagram) =>
        datagram.toString().startsWith('HELO') ? Buffer.from('100 OK\r\n') : null,
      );
      cleanups.push(silent.close);
      const udp = await client({ port: silent.port });
      const controller = new AbortController();
      const data = udp.data('x', { signal: controller.signal });
      setTimeout(() => controller.abort(), 50);
      await assert.rejects(data, isHeloError(AbortError, /^DATA was aborted$/));
      assert.equal((await udp.helo()).code, 100);
      // Aborted while waiting its turn: rejected at once, never sent.
      const first = udp.data('first', { timeoutMs: 300 });
      const queued = new AbortController();
      const second = udp.data('second', { signal: queued.signal });
      queued.abort();
      await assert.rejects(second, isHeloError(AbortError, /before it was sent/));
      await assert.rejects(first, isHeloError(TimeoutError));
      const sent = silent.received.map(({ datagram }) => datagram.toString());
      assert.ok(!sent.some((datagram) => datagram.includes('second')));
    });

    it('the client signal closes the client', async () => {
      const silent = await rawUdpServer();
      cleanups.push(silent.close);
      const controller = new AbortController();
      const udp = await client({ port: silent.port, signal: controller.signal });
      const data = udp.data('x');
      setTimeout(() => controller.abort(), 50);
      await assert.rejects(data, isHeloError(AbortError));
      await assert.rejects(udp.helo(), isHeloError(AbortError));
      assert.equal(udp.isOpen, false);
    });
  });
});
