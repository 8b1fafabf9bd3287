/**
 * The client library against the real server on a loopback port, and
 * against raw TCP servers scripted to misbehave in ways the real one won't
 * (never answering, closing mid-request, sending garbage).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { connect, type HeloClient, type Reply } from '../../src/client/client.js';
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
import { startServer, type HeloServer, type StartServerOptions } from '../../src/server/server.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { Store } from '../../src/store/store.js';
import { ControlledStore } from '../helpers/stores.js';
import { closedPort } from '../helpers/run-cli.js';

const BOUNDED = { timeout: 15_000 };

interface RawServer {
  readonly port: number;
  /** Every byte each connection sent, as latin1 text. */
  readonly received: string[];
  close(): Promise<void>;
}

/** A raw TCP server on 127.0.0.1:0 that runs `onSocket` for each connection. */
async function rawServer(onSocket: (socket: net.Socket) => void = () => {}): Promise<RawServer> {
  const sockets = new Set<net.Socket>();
  const received: string[] = [];
  const server = net.createServer((socket) => {
    const index = received.push('') - 1;
    sockets.add(socket);
    socket.on('data', (chunk: Buffer) => (received[index] += chunk.toString('latin1')));
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    onSocket(socket);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    received,
    async close() {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

function isHeloError(type: new (...args: never[]) => HeloError, code: string) {
  return (error: unknown): boolean => {
    assert.ok(error instanceof type, `expected ${type.name}, got ${String(error)}`);
    assert.equal(error.code, code);
    return true;
  };
}

describe('HeloClient', () => {
  let server: HeloServer | null = null;
  let raw: RawServer | null = null;
  const clients: HeloClient[] = [];

  async function start(
    options: Partial<StartServerOptions> = {},
  ): Promise<{ server: HeloServer; store: Store }> {
    const store = options.store ?? new MemoryStore();
    server = await startServer({ port: 0, logLevel: 'silent', ...options, store });
    return { server, store };
  }

  async function open(
    port: number,
    options: Parameters<typeof connect>[0] = {},
  ): Promise<HeloClient> {
    const client = await connect({ port, timeoutMs: 5_000, ...options });
    clients.push(client);
    return client;
  }

  afterEach(async () => {
    for (const client of clients.splice(0)) await client.close();
    await server?.close();
    server = null;
    await raw?.close();
    raw = null;
  });

  describe('against the real server', () => {
    it(
      'runs the reference session of protocol.md §3 and closes after 200 BYE',
      BOUNDED,
      async () => {
        const { server, store } = await start();
        const client = await open(server.port);
        const closed = once(client, 'close');
        assert.equal(client.state, 'command');
        assert.deepEqual(await client.helo(), { code: 100, token: 'OK', line: '100 OK' });
        assert.equal((await client.data('Hello world')).line, '300 DRCV');
        assert.equal((await client.send('USER')).line, '400 BCMD');
        assert.equal((await client.quit()).line, '200 BYE');
        assert.equal(client.isOpen, false);
        assert.equal(client.state, 'closed');
        assert.deepEqual(await closed, [null]);
        assert.deepEqual(
          (await store.read(0, 100)).map((record) => record.payload.toString()),
          ['Hello world'],
        );
      },
    );

    it('resolves pipelined requests in request order', BOUNDED, async () => {
      const { server, store } = await start();
      const client = await open(server.port);
      const replies: Reply[] = [];
      client.on('reply', (reply) => replies.push(reply));
      const requests: Promise<Reply>[] = [client.helo('pipeline')];
      for (let i = 0; i < 200; i++) {
        requests.push(client.data(`payload ${i}`));
        if (i % 50 === 0) requests.push(client.send('USER'));
      }
      requests.push(client.quit());
      assert.equal(client.pending, requests.length, 'all written before any reply');
      const lines = (await Promise.all(requests)).map((reply) => reply.line);
      const expected = ['100 OK'];
      for (let i = 0; i < 200; i++) {
        expected.push('300 DRCV');
        if (i % 50 === 0) expected.push('400 BCMD');
      }
      expected.push('200 BYE');
      assert.deepEqual(lines, expected);
      assert.deepEqual(
        replies.map((reply) => reply.line),
        expected,
      );
      const records = await store.read(0, 1000);
      assert.deepEqual(
        records.map((record) => record.payload.toString()),
        Array.from({ length: 200 }, (_, i) => `payload ${i}`),
      );
      assert.ok(records.every((record) => record.name === 'pipeline'));
    });

    it('stores payloads byte for byte: NUL, 0xFF, a final CR, blanks, empty', BOUNDED, async () => {
      const { server, store } = await start();
      const client = await open(server.port);
      const payloads = [
        Buffer.from([0x00, 0x41, 0x00]),
        Buffer.from([0xff, 0xfe, 0x80]),
        Buffer.from('ends in CR\r'),
        Buffer.from('\r'),
        Buffer.from('  leading and trailing blanks \t'),
        Buffer.alloc(0),
        Buffer.from('QUIT'),
        Buffer.from('DATA'),
        Buffer.from('héllo wörld', 'utf8'),
      ];
      for (const payload of payloads) assert.equal((await client.data(payload)).line, '300 DRCV');
      assert.equal((await client.data('a string payload')).line, '300 DRCV');
      const stored = (await store.read(0, 100)).map((record) => record.payload);
      assert.deepEqual(stored, [...payloads, Buffer.from('a string payload')]);
    });

    it('rejects a payload or line with LF without sending anything', BOUNDED, async () => {
      const { server, store } = await start();
      const client = await open(server.port);
      await assert.rejects(
        client.data('two\nlines'),
        isHeloError(InvalidArgumentError, 'HELO_ERR_INVALID_ARGUMENT'),
      );
      await assert.rejects(client.data(Buffer.from('x\n')), InvalidArgumentError);
      await assert.rejects(client.send('HELO\nQUIT'), InvalidArgumentError);
      await assert.rejects(client.helo('a\r\nb'), InvalidArgumentError);
      assert.equal(client.pending, 0);
      assert.equal(client.isOpen, true);
      // The first reply is HELO's: nothing else went out before it.
      const replies: string[] = [];
      client.on('reply', (reply) => replies.push(reply.line));
      await client.helo();
      assert.deepEqual(replies, ['100 OK']);
      assert.deepEqual(await store.read(0, 100), []);
    });

    it(
      'keeps replies matched when a padded bare DATA exceeds the line limit',
      BOUNDED,
      async () => {
        const { server, store } = await start({ maxLineBytes: 100 });
        const client = await open(server.port);
        // The padding means nothing to the server (§2), so it is not sent.
        const bare = client.send('DATA' + ' '.repeat(200));
        const payload = client.send('HELO');
        const next = client.send('USER');
        assert.equal((await bare).line, '300 DRCV');
        assert.equal((await payload).line, '300 DRCV');
        assert.equal((await next).line, '400 BCMD');
        assert.equal((await store.read(0, 10))[0]?.payload.toString(), 'HELO');
      },
    );

    it('gives a bare DATA sent with send() the reply of its payload line', BOUNDED, async () => {
      const { server, store } = await start();
      const client = await open(server.port);
      const bare = client.send('DATA');
      assert.equal(client.state, 'payload');
      await assert.rejects(client.data('x'), InvalidArgumentError);
      await assert.rejects(client.quit(), InvalidArgumentError);
      // protocol.md §3: after a bare DATA the next line is payload, whatever it says.
      const payload = client.send('QUIT');
      assert.equal(client.state, 'command');
      assert.equal((await bare).line, '300 DRCV');
      assert.equal((await payload).line, '300 DRCV');
      assert.equal((await client.send('DATA inline payload ')).line, '300 DRCV');
      assert.deepEqual(
        (await store.read(0, 100)).map((record) => record.payload.toString()),
        ['QUIT', 'inline payload '],
      );
    });

    it(
      'rejects with ReplyError carrying the reply when a payload is not stored',
      BOUNDED,
      async () => {
        const store = new ControlledStore();
        const { server } = await start({ store });
        const client = await open(server.port);
        store.isFailing = true;
        await assert.rejects(client.data('lost'), (error: unknown) => {
          assert.ok(error instanceof ReplyError);
          assert.equal(error.code, 'HELO_ERR_REPLY');
          assert.deepEqual(error.reply, { code: 500, token: 'FAIL', line: '500 FAIL' });
          return true;
        });
        store.isFailing = false;
        assert.equal((await client.data('kept')).line, '300 DRCV', 'the session goes on');
        assert.equal((await client.send('DATA x')).line, '300 DRCV');
      },
    );

    it(
      'rejects with ReplyError 401 LONG for an overlong payload, and goes on',
      BOUNDED,
      async () => {
        const { server } = await start({ maxLineBytes: 16 });
        const client = await open(server.port);
        await assert.rejects(client.data('x'.repeat(17)), (error: unknown) => {
          assert.ok(error instanceof ReplyError);
          assert.equal(error.reply.line, '401 LONG');
          return true;
        });
        assert.equal((await client.helo()).line, '100 OK');
      },
    );

    it('reports an unsolicited 503 BUSY and then the close', BOUNDED, async () => {
      const { server } = await start({ maxConnections: 1 });
      await open(server.port);
      const second = await open(server.port);
      const [reply] = (await once(second, 'unsolicited')) as [Reply];
      assert.equal(reply.line, '503 BUSY');
      const [reason] = (await once(second, 'close')) as [HeloError | null];
      assert.ok(reason instanceof ClosedError);
      assert.match(reason.message, /closed the connection after 503 BUSY/);
      assert.equal(second.isOpen, false);
      await assert.rejects(second.helo(), /after 503 BUSY/);
    });

    it('reports an unsolicited 408 TOUT after the idle timeout', BOUNDED, async () => {
      const { server } = await start({ idleTimeoutMs: 150 });
      const client = await open(server.port);
      const unsolicited = once(client, 'unsolicited');
      const closed = once(client, 'close');
      assert.equal((await client.helo()).line, '100 OK');
      assert.equal(((await unsolicited) as [Reply])[0].line, '408 TOUT');
      const [reason] = (await closed) as [HeloError | null];
      assert.ok(reason instanceof ClosedError);
      assert.match(reason.message, /408 TOUT/);
    });

    it('refuses new requests once QUIT is sent', BOUNDED, async () => {
      const { server } = await start();
      const client = await open(server.port);
      const bye = client.quit();
      assert.equal(client.state, 'quitting');
      await assert.rejects(client.helo(), ClosedError);
      assert.equal((await bye).line, '200 BYE');
      await assert.rejects(client.helo(), ClosedError);
    });

    it('close() ends the connection without QUIT and rejects what waits', BOUNDED, async () => {
      const store = new ControlledStore();
      const { server } = await start({ store });
      const client = await open(server.port);
      store.isHolding = true;
      const waiting = client.data('held');
      const closed = once(client, 'close');
      const rejected = assert.rejects(waiting, isHeloError(ClosedError, 'HELO_ERR_CLOSED'));
      await client.close();
      await rejected;
      assert.deepEqual(await closed, [null]);
      assert.equal(client.state, 'closed');
      await client.close();
      store.release();
    });

    it(
      'connects to a server that starts after the client when waitMs allows',
      BOUNDED,
      async () => {
        const port = await closedPort();
        const started = Date.now();
        const connecting = connect({ port, waitMs: 5_000 });
        const timer = setTimeout(() => void start({ port }), 300);
        try {
          const client = await connecting;
          clients.push(client);
          assert.ok(Date.now() - started >= 250, 'connected only once the server was up');
          assert.equal((await client.helo()).line, '100 OK');
        } finally {
          clearTimeout(timer);
        }
      },
    );
  });

  describe('connection failures', () => {
    it('rejects with ConnectError when nothing listens', BOUNDED, async () => {
      const port = await closedPort();
      await assert.rejects(connect({ port }), (error: unknown) => {
        assert.ok(error instanceof ConnectError);
        assert.equal(error.code, 'HELO_ERR_CONNECT');
        assert.equal(
          error.message,
          `connection refused at 127.0.0.1:${port} — is the server running?`,
        );
        return true;
      });
    });

    it('gives up after waitMs and says how long it tried', BOUNDED, async () => {
      const port = await closedPort();
      const started = Date.now();
      await assert.rejects(
        connect({ port, waitMs: 300 }),
        /connection refused .* \(kept trying for 300 ms\)/,
      );
      assert.ok(Date.now() - started >= 280);
    });

    it('stops waiting when the connect signal aborts', BOUNDED, async () => {
      const port = await closedPort();
      await assert.rejects(
        connect({ port, waitMs: 10_000, signal: AbortSignal.timeout(100) }),
        isHeloError(AbortError, 'HELO_ERR_ABORTED'),
      );
    });

    it('validates its options, naming the option', BOUNDED, async () => {
      await assert.rejects(connect({ port: 0 }), (error: unknown) => {
        assert.ok(error instanceof InvalidOptionError);
        assert.match(error.message, /^port /);
        return true;
      });
      await assert.rejects(connect({ timeoutMs: -1 }), /timeoutMs/);
      await assert.rejects(connect({ host: '' }), /host/);
    });
  });

  describe('against a misbehaving server', () => {
    it('times out a request, closes, and rejects every other waiting one', BOUNDED, async () => {
      raw = await rawServer();
      const client = await open(raw.port, { timeoutMs: 200 });
      const closed = once(client, 'close');
      const first = client.helo();
      const second = client.data('x');
      const started = Date.now();
      await assert.rejects(first, (error: unknown) => {
        assert.ok(error instanceof TimeoutError);
        assert.equal(error.code, 'HELO_ERR_TIMEOUT');
        assert.equal(error.message, 'no reply to HELO within 200 ms');
        return true;
      });
      assert.ok(Date.now() - started >= 150);
      await assert.rejects(second, isHeloError(ClosedError, 'HELO_ERR_CLOSED'));
      assert.equal(client.isOpen, false);
      assert.ok(((await closed) as [HeloError | null])[0] instanceof TimeoutError);
      await assert.rejects(client.helo(), TimeoutError);
    });

    it('lets one request override the timeout', BOUNDED, async () => {
      raw = await rawServer();
      const client = await open(raw.port, { timeoutMs: 60_000 });
      await assert.rejects(client.helo(undefined, { timeoutMs: 50 }), /within 50 ms/);
    });

    it('aborts a request with its signal, closing the connection', BOUNDED, async () => {
      raw = await rawServer();
      const client = await open(raw.port);
      const controller = new AbortController();
      const first = client.helo(undefined, { signal: controller.signal });
      const second = client.send('USER');
      setTimeout(() => controller.abort(), 50);
      await assert.rejects(first, isHeloError(AbortError, 'HELO_ERR_ABORTED'));
      await assert.rejects(second, ClosedError);
      assert.equal(client.isOpen, false);
    });

    it('does not send a request whose signal is already aborted', BOUNDED, async () => {
      const { server } = await start();
      const client = await open(server.port);
      await assert.rejects(client.data('x', { signal: AbortSignal.abort() }), AbortError);
      assert.equal(client.isOpen, true);
      assert.equal((await client.helo()).line, '100 OK');
    });

    it('rejects with ClosedError when the server closes mid-request', BOUNDED, async () => {
      raw = await rawServer((socket) => socket.once('data', () => socket.end()));
      const client = await open(raw.port);
      const first = client.helo();
      const second = client.data('x');
      await assert.rejects(first, (error: unknown) => {
        assert.ok(error instanceof ClosedError);
        assert.match(error.message, /^127\.0\.0\.1:\d+ closed the connection$/);
        return true;
      });
      await assert.rejects(second, ClosedError);
    });

    it('rejects with ClosedError when the server resets the connection', BOUNDED, async () => {
      raw = await rawServer((socket) => socket.once('data', () => socket.resetAndDestroy()));
      const client = await open(raw.port);
      await assert.rejects(client.helo(), ClosedError);
    });

    it(
      'rejects the waiting request with ReplyError when 503 BUSY answers it',
      BOUNDED,
      async () => {
        raw = await rawServer((socket) => socket.once('data', () => socket.end('503 BUSY\r\n')));
        const client = await open(raw.port);
        const first = client.helo();
        const second = client.send('USER');
        await assert.rejects(first, (error: unknown) => {
          assert.ok(error instanceof ReplyError);
          assert.equal(error.reply.line, '503 BUSY');
          assert.equal(error.message, 'expected 100 OK, server replied 503 BUSY');
          return true;
        });
        await assert.rejects(second, /closed the connection after 503 BUSY/);
      },
    );

    it('reads replies split across reads and many per read', BOUNDED, async () => {
      raw = await rawServer((socket) => {
        socket.setNoDelay(true);
        let lines = 0;
        socket.on('data', (chunk: Buffer) => {
          lines += chunk.toString('latin1').split('\n').length - 1;
          if (lines < 4) return;
          // Four replies: one byte at a time for the first, the rest in one write.
          const first = '100 OK\r\n';
          for (const [i, char] of [...first].entries()) setTimeout(() => socket.write(char), i * 5);
          setTimeout(() => socket.write('300 DRCV\r\n400 BCMD\n200 BYE\r\n'), 60);
        });
      });
      const client = await open(raw.port);
      const replies = await Promise.all([
        client.send('HELO'),
        client.send('DATA x'),
        client.send('USER'),
        client.send('QUIT'),
      ]);
      assert.deepEqual(
        replies.map((reply) => reply.line),
        ['100 OK', '300 DRCV', '400 BCMD', '200 BYE'],
      );
      assert.equal(raw.received[0], 'HELO\r\nDATA x\r\nUSER\r\nQUIT\r\n');
    });

    it('writes DATA and its payload as two CRLF lines', BOUNDED, async () => {
      raw = await rawServer((socket) => socket.on('data', () => socket.write('300 DRCV\r\n')));
      const client = await open(raw.port);
      await client.data(Buffer.from('ends in CR\r'));
      assert.equal(raw.received[0], 'DATA\r\nends in CR\r\r\n');
    });

    it(
      'closes with ClosedError when the server sends something that is not a reply',
      BOUNDED,
      async () => {
        raw = await rawServer((socket) =>
          socket.once('data', () => socket.write('HTTP/1.1 400 Bad Request\r\n')),
        );
        const client = await open(raw.port);
        await assert.rejects(client.helo(), (error: unknown) => {
          assert.ok(error instanceof ClosedError);
          assert.match(error.message, /not a helo reply: "HTTP\/1\.1 400 Bad Request"/);
          return true;
        });
        assert.equal(client.isOpen, false);
      },
    );
  });
});
