/**
 * The UDP endpoint (protocol.md §6) on a real loopback socket: the shared
 * protocol vectors that are request/reply (each request in its own
 * datagram), UDP's own rules and differences, the line limit, §8, store
 * failure, shutdown, and random datagrams that must never crash it.
 */
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { once } from 'node:events';
import { after, afterEach, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { pino, type Logger } from 'pino';
import { ALL_REPLIES, Replies } from '../../src/core/replies.js';
import { Session } from '../../src/core/session.js';
import { ListenError } from '../../src/errors.js';
import { interpretDatagram } from '../../src/core/datagram.js';
import { UdpEndpoint } from '../../src/server/transports/udp.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { Store } from '../../src/store/store.js';
import { ControlledStore } from '../helpers/stores.js';
import { bytes, loadVectors, type Vector } from '../helpers/vectors.js';
import { datagramArbitrary } from '../core/datagram-arbitrary.js';
import { UdpPeer } from './lossy-relay.js';

const BOUNDED = { timeout: 20_000 };
const SILENCE_MS = 150;

interface Harness {
  readonly endpoint: UdpEndpoint;
  readonly store: Store;
  /** Flip to make `isShuttingDown()` true. */
  readonly state: { isShuttingDown: boolean };
  readonly logLines: () => Record<string, unknown>[];
}

/** A pino logger that keeps its lines, to check what was logged. */
function capturingLogger(): { logger: Logger; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void chunks.push(line) });
  return {
    logger,
    lines: () => chunks.map((line) => JSON.parse(line) as Record<string, unknown>),
  };
}

async function startEndpoint(
  options: { maxLineBytes?: number; store?: Store; host?: string } = {},
): Promise<Harness> {
  const store = options.store ?? new MemoryStore();
  const state = { isShuttingDown: false };
  const { logger, lines } = capturingLogger();
  let counter = 0;
  const endpoint = await UdpEndpoint.bind(
    { host: options.host ?? '127.0.0.1', port: 0, maxLineBytes: options.maxLineBytes ?? 8192 },
    {
      store,
      logger,
      newSessionId: () => `udp-test-${++counter}`,
      isShuttingDown: () => state.isShuttingDown,
    },
  );
  return { endpoint, store, state, logLines: lines };
}

async function allRecords(store: Store) {
  return await store.read(0, 100_000);
}

/**
 * A vector's input as UDP datagrams, one request each: every line alone,
 * except a bare DATA, which travels with its payload line (§6). Null when
 * the vector is not a plain request/reply exchange: a partial line, a bare
 * DATA with no payload, anything after QUIT, or an HTTP-looking line (§8)
 * (UDP's answers differ there, and the tests below check those cases).
 */
function datagramsOf(vector: Vector): string[] | null {
  if (typeof vector.input !== 'string') return null; // §9 pauses: a stream matter
  if (vector.options?.unterminatedAfterMs !== undefined) return null;
  const maxLineBytes = vector.options?.maxLineBytes ?? 8192;
  const lines = vector.input.match(/[^\n]*\n|[^\n]+$/g) ?? [];
  const session = new Session();
  const datagrams: string[] = [];
  let bareData: string | null = null;
  let isQuit = false;
  for (const line of lines) {
    if (!line.endsWith('\n') || isQuit) return null;
    const body = bytes(line.replace(/\r?\n$/, ''));
    const action =
      body.length > maxLineBytes ? session.onLongLine() : session.onLine(body, 0, body.length);
    if (bareData !== null) {
      datagrams.push(bareData + line);
      bareData = null;
    } else if (action.type === 'await-payload') {
      bareData = line;
    } else if (action.type === 'reject') {
      return null;
    } else {
      if (action.type === 'reply' && action.reply.closes) isQuit = true;
      datagrams.push(line);
    }
  }
  return bareData === null ? datagrams : null;
}

describe('UDP endpoint: the shared protocol vectors, one request per datagram', BOUNDED, () => {
  const vectors = loadVectors();
  const selected = vectors.flatMap((vector) => {
    const datagrams = datagramsOf(vector);
    return datagrams === null ? [] : [{ vector, datagrams }];
  });

  it('selects most of the vectors', () => {
    // The rest are partial lines, a bare DATA with nothing after it, lines
    // after QUIT, §8 and §9: the tests further down cover each for UDP.
    assert.ok(selected.length >= 30, `only ${selected.length} of ${vectors.length} selected`);
  });

  const groups = new Map<number, typeof selected>();
  for (const entry of selected) {
    const max = entry.vector.options?.maxLineBytes ?? 8192;
    groups.set(max, [...(groups.get(max) ?? []), entry]);
  }

  for (const [maxLineBytes, entries] of groups) {
    describe(`maxLineBytes ${maxLineBytes}`, () => {
      let harness: Harness;
      let peer: UdpPeer;
      before(async () => {
        harness = await startEndpoint({ maxLineBytes });
        peer = await UdpPeer.open();
      });
      after(async () => {
        await peer.close();
        await harness.endpoint.close();
      });

      for (const { vector, datagrams } of entries) {
        it(vector.name, async () => {
          const { endpoint, store } = harness;
          const before = (await allRecords(store)).length;
          let replies = '';
          for (const datagram of datagrams) {
            const reply = await peer.request(datagram, endpoint.port);
            assert.notEqual(reply, null, `no reply to ${JSON.stringify(datagram)}`);
            replies += reply;
          }
          assert.equal(replies, vector.replies, 'replies');
          const records = (await allRecords(store)).slice(before);
          assert.deepEqual(
            records.map((record) => record.payload.toString('latin1')),
            vector.stored,
            'stored payloads',
          );
          // §6: no HELO name over UDP, a fresh session per datagram, the sender as peer.
          for (const record of records) {
            assert.equal(record.name, null, 'no HELO name labels a UDP payload');
            assert.equal(record.peer, `127.0.0.1:${peer.port}`);
          }
          assert.equal(new Set(records.map((record) => record.session)).size, records.length);
          if (vector.closes) {
            // The vector ended with QUIT, which closes nothing over UDP.
            assert.equal(await peer.request('HELO\r\n', endpoint.port), '100 OK\r\n');
          }
        });
      }
    });
  }
});

describe('UDP endpoint: §6 rules and how UDP differs', BOUNDED, () => {
  let harness: Harness;
  let peer: UdpPeer;
  before(async () => {
    harness = await startEndpoint({ maxLineBytes: 16 });
    peer = await UdpPeer.open();
  });
  after(async () => {
    await peer.close();
    await harness.endpoint.close();
  });

  async function exchange(
    datagram: string | Buffer,
  ): Promise<{ reply: string | null; stored: string[] }> {
    const before = (await allRecords(harness.store)).length;
    const reply = await peer.request(datagram, harness.endpoint.port, SILENCE_MS * 4);
    const stored = (await allRecords(harness.store))
      .slice(before)
      .map((record) => record.payload.toString('latin1'));
    return { reply, stored };
  }

  it('answers each request with one datagram holding one reply line', async () => {
    await peer.send('HELO', harness.endpoint.port);
    const datagram = await peer.next();
    assert.deepEqual(datagram, Buffer.from('100 OK\r\n'));
    assert.equal(await peer.next(SILENCE_MS), null, 'exactly one reply datagram');
  });

  it('a final LF or CRLF is optional and removed', async () => {
    for (const datagram of ['HELO', 'HELO\n', 'HELO\r\n', 'quit', 'QUIT\r\n']) {
      const { reply } = await exchange(datagram);
      assert.match(reply ?? '', /^(100 OK|200 BYE)\r\n$/, JSON.stringify(datagram));
    }
    assert.deepEqual(await exchange('DATA abc'), { reply: '300 DRCV\r\n', stored: ['abc'] });
    assert.deepEqual(await exchange('DATA abc\n'), { reply: '300 DRCV\r\n', stored: ['abc'] });
    // Only a CR before the final LF goes: a lone final CR is the payload's.
    assert.deepEqual(await exchange('DATA abc\r'), { reply: '300 DRCV\r\n', stored: ['abc\r'] });
    assert.deepEqual(await exchange('DATA abc\r\r\n'), {
      reply: '300 DRCV\r\n',
      stored: ['abc\r'],
    });
  });

  it('DATA, LF, payload in one datagram is one request', async () => {
    const cases: [string, string][] = [
      ['DATA\r\nHello world\r\n', 'Hello world'],
      ['DATA\nHello world', 'Hello world'],
      ['data\nQUIT', 'QUIT'],
      ['DATA \t\r\n  padded  \r\n', '  padded  '],
      ['DATA\n\n', ''],
      ['DATA\r\n\r\n', ''],
      ['DATA\r\nGET / HTTP/1.1\r\n', 'GET / HTTP/1.1'],
    ];
    for (const [datagram, payload] of cases) {
      assert.deepEqual(
        await exchange(datagram),
        { reply: '300 DRCV\r\n', stored: [payload] },
        JSON.stringify(datagram),
      );
    }
    const binary = Buffer.from([0x44, 0x41, 0x54, 0x41, 0x0a, 0x00, 0xff, 0x80, 0x0d, 0x0d, 0x0a]);
    assert.deepEqual(await exchange(binary), {
      reply: '300 DRCV\r\n',
      stored: ['\x00\xff\x80\r'],
    });
  });

  it('no state crosses datagrams: a bare DATA gets 400 BCMD, and the next datagram is a command', async () => {
    assert.deepEqual(await exchange('DATA\r\n'), { reply: '400 BCMD\r\n', stored: [] });
    assert.deepEqual(await exchange('DATA   '), { reply: '400 BCMD\r\n', stored: [] });
    assert.deepEqual(await exchange('Hello world\r\n'), { reply: '400 BCMD\r\n', stored: [] });
  });

  it('a HELO name never labels a payload', async () => {
    assert.equal((await exchange('HELO alice\r\n')).reply, '100 OK\r\n');
    const before = (await allRecords(harness.store)).length;
    assert.equal((await exchange('DATA 1\r\n')).reply, '300 DRCV\r\n');
    assert.equal((await allRecords(harness.store))[before]!.name, null);
  });

  it('QUIT answers 200 BYE and closes nothing', async () => {
    assert.deepEqual(await exchange('QUIT\r\n'), { reply: '200 BYE\r\n', stored: [] });
    assert.deepEqual(await exchange('DATA after\r\n'), {
      reply: '300 DRCV\r\n',
      stored: ['after'],
    });
    assert.equal((await exchange('QUIT now')).reply, '400 BCMD\r\n');
  });

  it('more than one request in a datagram is a bad command, and nothing of it is stored', async () => {
    for (const datagram of [
      'HELO\r\nHELO\r\n',
      'DATA a\nDATA b',
      'DATA\na\nb',
      'QUIT\nDATA lost',
      'HELO\nDATA',
      '\n\n',
    ]) {
      assert.deepEqual(
        await exchange(datagram),
        { reply: '400 BCMD\r\n', stored: [] },
        JSON.stringify(datagram),
      );
    }
    assert.deepEqual(await exchange(''), { reply: '400 BCMD\r\n', stored: [] });
  });

  it('the line limit is TCP’s, per line: over it, 401 LONG and nothing stored', async () => {
    // maxLineBytes 16 here.
    const atLimit = 'x'.repeat(11); // `DATA ` + 11 = 16 bytes
    assert.deepEqual(await exchange(`DATA ${atLimit}`), {
      reply: '300 DRCV\r\n',
      stored: [atLimit],
    });
    assert.deepEqual(await exchange(`DATA ${atLimit}x\r\n`), { reply: '401 LONG\r\n', stored: [] });
    // With DATA LF payload, the payload line alone may be 16 bytes.
    const payload16 = 'p'.repeat(16);
    assert.deepEqual(await exchange(`DATA\r\n${payload16}\r\n`), {
      reply: '300 DRCV\r\n',
      stored: [payload16],
    });
    assert.deepEqual(await exchange(`DATA\r\n${payload16}x`), {
      reply: '401 LONG\r\n',
      stored: [],
    });
    assert.deepEqual(await exchange(`HELO ${'n'.repeat(20)}`), {
      reply: '401 LONG\r\n',
      stored: [],
    });
    // Limit + 1 bytes whose last is a CR (and no LF): too long, as on TCP.
    assert.deepEqual(await exchange(`DATA ${atLimit}\r`), { reply: '401 LONG\r\n', stored: [] });
    // The biggest datagram there is.
    assert.deepEqual(await exchange(Buffer.alloc(65_507, 0x61)), {
      reply: '401 LONG\r\n',
      stored: [],
    });
    // Overlong and more than one request: LONG says more than BCMD.
    assert.deepEqual(await exchange(`HELO\n${'y'.repeat(40)}`), {
      reply: '401 LONG\r\n',
      stored: [],
    });
  });

  it('§8: an HTTP-looking datagram gets no reply, is logged, and changes nothing after it', async () => {
    const rejectedBefore = harness.endpoint.stats.rejected;
    for (const datagram of [
      'GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n',
      'Host: x',
      'HELO\r\nPOST /x HTTP/1.0\r\nDATA evil\r\n',
    ]) {
      assert.deepEqual(
        await exchange(datagram),
        { reply: null, stored: [] },
        JSON.stringify(datagram),
      );
    }
    assert.equal(harness.endpoint.stats.rejected, rejectedBefore + 3);
    const warnings = harness
      .logLines()
      .filter((line) => line.level === 40 && String(line.msg).includes('HTTP-like'));
    assert.equal(warnings.length, 3);
    assert.equal(warnings[0]!.peer, `127.0.0.1:${peer.port}`);
    // No state: the very next datagram from the same peer is served.
    assert.deepEqual(await exchange('DATA fine'), { reply: '300 DRCV\r\n', stored: ['fine'] });
  });

  it('stats count datagrams, replies by code and payloads', async () => {
    const { stats } = harness.endpoint;
    assert.ok(stats.datagramsIn > 20);
    assert.ok(stats.bytesIn > 65_507);
    assert.ok((stats.repliesByCode[300] ?? 0) > 5);
    assert.ok((stats.repliesByCode[400] ?? 0) > 5);
    assert.ok((stats.repliesByCode[401] ?? 0) > 3);
    assert.equal(stats.payloadsStored, (await allRecords(harness.store)).length);
    assert.equal(stats.payloadsFailed, 0);
    assert.equal(stats.pendingAppends, 0);
    const replies = Object.values(stats.repliesByCode).reduce((sum, count) => sum + count, 0);
    assert.equal(stats.datagramsIn, replies + stats.rejected + stats.dropped);
  });
});

describe('UDP endpoint: store failure, shutdown, close, bind', BOUNDED, () => {
  const opened: { close(): Promise<void> }[] = [];
  afterEach(async () => {
    for (const thing of opened.splice(0).reverse()) await thing.close();
  });

  async function open(options: Parameters<typeof startEndpoint>[0] = {}) {
    const harness = await startEndpoint(options);
    const peer = await UdpPeer.open();
    opened.push(harness.endpoint, peer);
    return { ...harness, peer };
  }

  it('answers 500 FAIL when the store fails, and stores again when it recovers', async () => {
    const store = new ControlledStore();
    const { endpoint, peer, logLines } = await open({ store });
    store.isFailing = true;
    assert.equal(await peer.request('DATA lost', endpoint.port), '500 FAIL\r\n');
    assert.equal(endpoint.stats.payloadsFailed, 1);
    assert.ok(logLines().some((line) => line.level === 50 && line.transport === 'udp'));
    store.isFailing = false;
    assert.equal(await peer.request('DATA kept', endpoint.port), '300 DRCV\r\n');
    assert.deepEqual(
      (await allRecords(store)).map((record) => record.payload.toString()),
      ['kept'],
    );
  });

  it('answers 300 DRCV only once the commit is done', async () => {
    const store = new ControlledStore();
    const { endpoint, peer } = await open({ store });
    store.isHolding = true;
    await peer.send('DATA held', endpoint.port);
    assert.equal(await peer.next(SILENCE_MS), null, 'no reply before the commit');
    assert.equal(endpoint.stats.pendingAppends, 1);
    store.release();
    assert.equal((await peer.next())?.toString(), '300 DRCV\r\n');
  });

  it('answers 503 BUSY to every request while the server shuts down, and stores nothing', async () => {
    const { endpoint, peer, store, state } = await open();
    state.isShuttingDown = true;
    assert.equal(await peer.request('HELO', endpoint.port), '503 BUSY\r\n');
    assert.equal(await peer.request('DATA late', endpoint.port), '503 BUSY\r\n');
    assert.equal(await peer.request('nonsense', endpoint.port), '503 BUSY\r\n');
    assert.equal(await peer.request('GET / HTTP/1.1', endpoint.port, SILENCE_MS), null);
    assert.equal((await allRecords(store)).length, 0);
  });

  it('close() answers the appends in flight, 503 BUSY meanwhile, then closes the socket', async () => {
    const store = new ControlledStore();
    const { endpoint, peer } = await open({ store });
    store.isHolding = true;
    await peer.send('DATA in flight', endpoint.port);
    await waitUntil(() => store.heldCount === 1);
    let isClosed = false;
    const closed = endpoint.close().then(() => (isClosed = true));
    assert.equal(await peer.request('HELO', endpoint.port), '503 BUSY\r\n');
    assert.equal(isClosed, false, 'close() waits for the append in flight');
    store.release();
    assert.equal((await peer.next())?.toString(), '300 DRCV\r\n');
    await closed;
    assert.deepEqual(
      (await allRecords(store)).map((record) => record.payload.toString()),
      ['in flight'],
    );
    // The socket is gone: nothing answers any more.
    assert.equal(await peer.request('HELO', endpoint.port, SILENCE_MS), null);
    await endpoint.close(); // twice is fine
  });

  it('close() gives up on a commit that never ends after shutdownGraceMs', async () => {
    const store = new ControlledStore();
    const { logger } = capturingLogger();
    const endpoint = await UdpEndpoint.bind(
      { host: '127.0.0.1', port: 0, maxLineBytes: 100, shutdownGraceMs: 100 },
      { store, logger, newSessionId: () => 's', isShuttingDown: () => false },
    );
    const peer = await UdpPeer.open();
    opened.push(peer, store);
    store.isHolding = true;
    await peer.send('DATA stuck', endpoint.port);
    await waitUntil(() => store.heldCount === 1);
    const started = Date.now();
    await endpoint.close();
    assert.ok(Date.now() - started < 2_000);
  });

  it('drops DATA datagrams unanswered while maxPendingAppends appends wait', async () => {
    const store = new ControlledStore();
    const { logger } = capturingLogger();
    const endpoint = await UdpEndpoint.bind(
      { host: '127.0.0.1', port: 0, maxLineBytes: 100, maxPendingAppends: 2 },
      { store, logger, newSessionId: () => 's', isShuttingDown: () => false },
    );
    const peer = await UdpPeer.open();
    opened.push(endpoint, peer);
    store.isHolding = true;
    for (const payload of ['a', 'b', 'c']) await peer.send(`DATA ${payload}`, endpoint.port);
    await waitUntil(() => endpoint.stats.datagramsIn === 3);
    assert.equal(endpoint.stats.dropped, 1);
    assert.equal(await peer.request('HELO', endpoint.port), '100 OK\r\n', 'other requests go on');
    store.release();
    const replies = [await peer.next(), await peer.next()].map(String);
    assert.deepEqual(replies, ['300 DRCV\r\n', '300 DRCV\r\n']);
    assert.equal(await peer.next(SILENCE_MS), null);
    assert.deepEqual(
      (await allRecords(store)).map((record) => record.payload.toString()),
      ['a', 'b'],
    );
  });

  it('a port in use is a ListenError that names the UDP address', async () => {
    const taken = dgram.createSocket('udp4');
    taken.bind(0, '127.0.0.1');
    await once(taken, 'listening');
    const { port } = taken.address();
    try {
      await assert.rejects(
        UdpEndpoint.bind(
          { host: '127.0.0.1', port, maxLineBytes: 100 },
          {
            store: new MemoryStore(),
            logger: pino({ level: 'silent' }),
            newSessionId: () => 's',
            isShuttingDown: () => false,
          },
        ),
        (error: unknown) => {
          assert.ok(error instanceof ListenError);
          assert.equal(
            error.message,
            `cannot listen on udp://127.0.0.1:${port}: the port is already in use`,
          );
          return true;
        },
      );
    } finally {
      taken.close();
    }
  });

  it('an unknown host is a ListenError', async () => {
    await assert.rejects(
      UdpEndpoint.bind(
        { host: 'no-such-host.invalid', port: 0, maxLineBytes: 100 },
        {
          store: new MemoryStore(),
          logger: pino({ level: 'silent' }),
          newSessionId: () => 's',
          isShuttingDown: () => false,
        },
      ),
      (error: unknown) =>
        error instanceof ListenError && /udp:\/\/no-such-host/.test(error.message),
    );
  });

  it('binds udp6 for an IPv6 host: url and peer in brackets', async (t) => {
    let harness: Harness;
    try {
      harness = await startEndpoint({ host: '::1' });
    } catch {
      t.skip('no IPv6 loopback here');
      return;
    }
    opened.push(harness.endpoint);
    const peer = await UdpPeer.open('::1');
    opened.push(peer);
    assert.equal(harness.endpoint.url, `udp://[::1]:${harness.endpoint.port}`);
    assert.equal(
      await peer.request('DATA v6', harness.endpoint.port, 2_000, '::1'),
      '300 DRCV\r\n',
    );
    assert.equal((await allRecords(harness.store))[0]!.peer, `[::1]:${peer.port}`);
  });

  it('url is udp://host:port', async () => {
    const { endpoint } = await open();
    assert.equal(endpoint.url, `udp://127.0.0.1:${endpoint.port}`);
    assert.equal(endpoint.host, '127.0.0.1');
  });
});

describe('UDP endpoint: random datagrams over the socket', BOUNDED, () => {
  it('get exactly the one well-formed reply the rules say, or none (§8), and never crash it', async () => {
    const MAX = 32;
    const harness = await startEndpoint({ maxLineBytes: MAX });
    const sender = await UdpPeer.open();
    const prober = await UdpPeer.open();
    const replyBytes = new Set(ALL_REPLIES.map((reply) => reply.bytes.toString('latin1')));
    let run = 0;
    try {
      await fc.assert(
        fc.asyncProperty(datagramArbitrary, async (datagram) => {
          run++;
          const before = (await allRecords(harness.store)).length;
          const expected = interpretDatagram(datagram, MAX);
          await sender.send(datagram, harness.endpoint.port);
          // The probe is handled after the datagram: once its reply is here,
          // the datagram's reply (if any) has been sent.
          const probe = `DATA probe-${run}`;
          assert.equal(await prober.request(probe, harness.endpoint.port), '300 DRCV\r\n');
          const reply = await sender.next(expected.type === 'reject' ? 20 : 2_000);
          if (expected.type === 'reject') {
            assert.equal(reply, null, 'no reply to an HTTP-looking datagram');
          } else {
            assert.notEqual(reply, null, 'a reply');
            const text = reply!.toString('latin1');
            assert.ok(replyBytes.has(text), `a well-formed reply, got ${JSON.stringify(text)}`);
            const code = expected.type === 'store' ? Replies.DRCV.code : expected.reply.code;
            assert.equal(text.slice(0, 3), String(code));
          }
          const stored = (await allRecords(harness.store))
            .slice(before)
            .map((record) => record.payload.toString('latin1'));
          const payload = expected.type === 'store' ? [expected.payload.toString('latin1')] : [];
          assert.deepEqual(stored, [...payload, probe.slice(5)]);
        }),
        { numRuns: 200 },
      );
      // Nothing arrived beyond one reply per datagram.
      assert.equal(await sender.next(SILENCE_MS), null);
      assert.equal(sender.received.length, run - harness.endpoint.stats.rejected);
    } finally {
      await sender.close();
      await prober.close();
      await harness.endpoint.close();
    }
  });
});

async function waitUntil(predicate: () => boolean, timeoutMs = 2_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error('timed out waiting for a condition');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}
