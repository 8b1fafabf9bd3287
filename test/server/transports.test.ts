/**
 * What the Unix-socket and TLS listeners add beyond the protocol (which
 * stream-vectors.test.ts replays over them): mutual TLS, limits before the
 * handshake, handshake timeout, certificate reload on SIGHUP, the client
 * certificate stored with each payload, and safe handling of the socket file.
 */
import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import { copyFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect as connectTcp, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import { connect as connectTls, type TLSSocket } from 'node:tls';
import { connect } from '../../src/client/client.js';
import { startServer, type HeloServer, type StartServerOptions } from '../../src/server/server.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { makeTestPki } from '../helpers/certificates.js';
import { waitFor } from '../helpers/processes.js';
import { delay, RawClient } from '../helpers/raw-client.js';
import { assertFailed, runHelo } from '../helpers/run-cli.js';
import { spawnServer } from '../../support/server-process.js';

const pki = makeTestPki();
const dir = mkdtempSync(join(tmpdir(), 'helo-transports-'));
after(() => {
  pki.remove();
  rmSync(dir, { recursive: true, force: true });
});

const servers: HeloServer[] = [];
afterEach(async () => {
  for (const server of servers.splice(0)) await server.close();
});

async function serve(
  options: Partial<StartServerOptions>,
): Promise<{ server: HeloServer; store: MemoryStore }> {
  const store = new MemoryStore();
  const server = await startServer({ port: 0, logLevel: 'silent', store, ...options });
  servers.push(server);
  return { server, store };
}

const MUTUAL_TLS: Partial<StartServerOptions> = {
  tlsPort: 0,
  tlsCertPath: pki.serverCert,
  tlsKeyPath: pki.serverKey,
  tlsCaPath: pki.caCert,
  tlsRequireClientCert: true,
};

/** Connects with TLS, sends `request`, and collects what comes back until the connection ends. */
async function tlsExchange(
  port: number,
  options: { cert?: string; key?: string },
  request: string,
): Promise<{ text: string; error: string | null }> {
  const socket = connectTls({
    host: '127.0.0.1',
    port,
    ca: pki.read(pki.caCert),
    ...(options.cert === undefined
      ? {}
      : { cert: pki.read(options.cert), key: pki.read(options.key!) }),
  });
  let text = '';
  let error: string | null = null;
  socket.on('data', (chunk: Buffer) => (text += chunk.toString('latin1')));
  socket.on('error', (e: Error) => (error = e.message));
  socket.once('secureConnect', () => socket.write(request));
  await new Promise((resolve) => socket.once('close', resolve));
  return { text, error };
}

/** The first bytes a TLS client sends (its ClientHello), caught by a plain TCP listener. */
async function captureClientHello(ca: Buffer): Promise<Buffer> {
  const catcher = createServer();
  catcher.listen(0, '127.0.0.1');
  await once(catcher, 'listening');
  const caught = new Promise<Buffer>((resolve) =>
    catcher.once('connection', (socket) =>
      socket.once('data', (chunk: Buffer) => {
        resolve(chunk);
        socket.destroy();
      }),
    ),
  );
  const { port } = catcher.address() as { port: number };
  const client = connectTls({ host: '127.0.0.1', port, ca });
  client.on('error', () => undefined);
  const hello = await caught;
  client.destroy();
  catcher.close();
  return hello;
}

describe('mutual TLS', () => {
  it('serves a client whose certificate the CA signed, and stores its subject with each payload', async () => {
    const { server, store } = await serve(MUTUAL_TLS);
    const result = await tlsExchange(
      server.tlsPort!,
      { cert: pki.clientCert, key: pki.clientKey },
      'HELO\r\nDATA signed\r\nQUIT\r\n',
    );
    assert.equal(result.text, '100 OK\r\n300 DRCV\r\n200 BYE\r\n');
    const [record] = await store.read(0, 10);
    assert.equal(record?.payload.toString(), 'signed');
    assert.equal(record?.clientCert, 'O=lab, CN=alice');
  });

  it('stores a 40 KB certificate subject cut to 1 KiB of UTF-8, ending with …', async () => {
    // Many OU fields, each with a 2-byte character, so that the cut can fall inside one.
    const units = Array.from({ length: 1_000 }, (_, i) => `/OU=unité-${i}-${'x'.repeat(26)}`);
    const huge = pki.issueClient('huge', `/CN=huge${units.join('')}`);
    const fullSubject = new X509Certificate(pki.read(huge.cert)).subject.split('\n').join(', ');
    assert.ok(Buffer.byteLength(fullSubject) > 40_000);
    const { server, store } = await serve(MUTUAL_TLS);
    const result = await tlsExchange(server.tlsPort!, huge, 'HELO\r\nDATA big\r\nQUIT\r\n');
    assert.equal(result.text, '100 OK\r\n300 DRCV\r\n200 BYE\r\n');
    const stored = (await store.read(0, 10))[0]?.clientCert ?? '';
    assert.ok(Buffer.byteLength(stored) <= 1024, `${Buffer.byteLength(stored)} bytes stored`);
    assert.ok(Buffer.byteLength(stored) > 1000, 'the budget is used, not wasted');
    assert.ok(stored.endsWith('…'));
    assert.ok(fullSubject.startsWith(stored.slice(0, -1)), 'a prefix of the subject');
    assert.equal(Buffer.from(stored).toString(), stored, 'valid UTF-8');
  });

  for (const [who, options] of [
    ['no certificate', {}],
    ['a certificate nobody trusted signed', { cert: pki.rogueCert, key: pki.rogueKey }],
  ] as const) {
    it(`refuses a client with ${who} before any command runs`, async () => {
      const { server, store } = await serve(MUTUAL_TLS);
      const result = await tlsExchange(server.tlsPort!, options, 'HELO\r\nDATA unsigned\r\n');
      assert.equal(result.text, '', 'no reply at all');
      assert.equal((await store.read(0, 10)).length, 0, 'nothing stored');
      assert.equal(server.stats.connectionsTotal, 0, 'never became a session');
    });
  }

  it('the client library and CLI connect with a client certificate', async () => {
    const { server, store } = await serve(MUTUAL_TLS);
    const client = await connect({
      address: `tls://127.0.0.1:${server.tlsPort}`,
      tls: {
        ca: pki.read(pki.caCert),
        cert: pki.read(pki.clientCert),
        key: pki.read(pki.clientKey),
      },
    });
    await client.helo('lib');
    await client.data('from the library');
    await client.quit();
    const cli = await runHelo([
      'send',
      `tls://127.0.0.1:${server.tlsPort}`,
      '--tls-ca',
      pki.caCert,
      '--tls-cert',
      pki.clientCert,
      '--tls-key',
      pki.clientKey,
      'from the CLI',
    ]);
    assert.equal(cli.status, 0, cli.stderr);
    assert.deepEqual(
      (await store.read(0, 10)).map((r) => [r.payload.toString(), r.clientCert]),
      [
        ['from the library', 'O=lab, CN=alice'],
        ['from the CLI', 'O=lab, CN=alice'],
      ],
    );
  });

  it('the CLI reports an untrusted server certificate in one line, exit 1', async () => {
    const { server } = await serve({
      tlsPort: 0,
      tlsCertPath: pki.serverCert,
      tlsKeyPath: pki.serverKey,
    });
    const result = await runHelo(['send', `tls://127.0.0.1:${server.tlsPort}`, 'x']);
    assertFailed(result, 1, /TLS connection to tls:\/\/127\.0\.0\.1:\d+ failed: /);
  });
});

describe('TLS limits', () => {
  it('applies --max-connections before the handshake', async () => {
    const { server } = await serve({
      ...MUTUAL_TLS,
      tlsRequireClientCert: false,
      tlsCaPath: null,
      maxConnections: 1,
    });
    const holder = await RawClient.open(server.port);
    holder.write('HELO\r\n');
    await holder.untilBytes(8);
    const result = await tlsExchange(server.tlsPort!, {}, 'HELO\r\n');
    assert.equal(result.text, '');
    assert.notEqual(result.error, null, 'the handshake never completes');
    assert.equal(server.stats.rejected['max-connections'], 1);
    holder.close();
  });

  it('gives a finished TLS session its slot back exactly once', async () => {
    const { server } = await serve({
      tlsPort: 0,
      tlsCertPath: pki.serverCert,
      tlsKeyPath: pki.serverKey,
      maxConnections: 1,
    });
    const first = await tlsExchange(server.tlsPort!, {}, 'HELO\r\nQUIT\r\n');
    assert.equal(first.text, '100 OK\r\n200 BYE\r\n');
    await waitFor(
      () => server.stats.connectionsCurrent,
      (n) => n === 0,
      2_000,
      'the slot back',
    );
    const ca = pki.read(pki.caCert);
    const clients = await Promise.all(
      [0, 1, 2].map(() => RawClient.openTls(server.tlsPort!, { ca }).catch(() => null)),
    );
    for (const client of clients) client?.write('HELO\r\n');
    await new Promise((resolve) => setTimeout(resolve, 300));
    const served = clients.filter((client) => client?.text === '100 OK\r\n');
    assert.equal(served.length, 1, 'one live session under --max-connections 1');
    for (const client of clients) client?.close();
  });

  it('answers an idle TLS session 503 BUSY on shutdown', async () => {
    const { server } = await serve({
      tlsPort: 0,
      tlsCertPath: pki.serverCert,
      tlsKeyPath: pki.serverKey,
    });
    const client = await RawClient.openTls(server.tlsPort!, { ca: pki.read(pki.caCert) });
    client.write('HELO\r\n');
    await client.untilBytes(8);
    await server.close();
    servers.splice(servers.indexOf(server), 1);
    await client.untilEnded();
    assert.equal(client.text, '100 OK\r\n503 BUSY\r\n');
  });

  it('gives the slot back as soon as a client closes during or right after its handshake', async () => {
    const { server } = await serve({
      tlsPort: 0,
      tlsCertPath: pki.serverCert,
      tlsKeyPath: pki.serverKey,
      tlsHandshakeTimeoutMs: 10_000,
      maxConnections: 5,
    });
    const ca = pki.read(pki.caCert);
    const hello = await captureClientHello(ca);
    // Done on the client's side: it closes before its last handshake bytes leave.
    const closeAfterHandshake = async (): Promise<void> => {
      const socket = connectTls({ host: '127.0.0.1', port: server.tlsPort!, ca });
      socket.on('error', () => undefined);
      await once(socket, 'secureConnect');
      socket.destroy();
    };
    // Half done: a ClientHello, the server's answer, then a FIN.
    const closeMidHandshake = async (): Promise<void> => {
      const socket = connectTcp({ host: '127.0.0.1', port: server.tlsPort! });
      socket.on('error', () => undefined);
      await once(socket, 'connect');
      socket.write(hello);
      await once(socket, 'data');
      socket.end();
    };
    await Promise.all([...[0, 1, 2].map(closeAfterHandshake), ...[0, 1].map(closeMidHandshake)]);
    await delay(100);
    const later = await Promise.all([0, 1].map(() => RawClient.open(server.port)));
    for (const client of later) client.write('HELO\r\n');
    await Promise.all(later.map((client) => client.untilBytes(8, 2_000)));
    assert.deepEqual(
      later.map((client) => client.text),
      ['100 OK\r\n', '100 OK\r\n'],
      'served, not 503 BUSY',
    );
    assert.equal(server.stats.rejected['max-connections'], 0);
    for (const client of later) client.close();
  });

  it('cuts off a handshake that does not finish in time', async () => {
    const { server } = await serve({ ...MUTUAL_TLS, tlsHandshakeTimeoutMs: 200 });
    const silent = connectTcp({ host: '127.0.0.1', port: server.tlsPort! });
    silent.on('error', () => undefined);
    const started = Date.now();
    await once(silent, 'close');
    assert.ok(Date.now() - started < 5_000);
    await waitFor(
      () => server.stats.connectionsCurrent,
      (n) => n === 0,
      2_000,
      'no session',
    );
  });
});

describe('TLS certificate reload (SIGHUP)', () => {
  it('serves new connections with the renewed certificate, without a restart', async () => {
    const cert = join(dir, 'live.pem');
    const key = join(dir, 'live.key');
    const first = pki.issueServer('first');
    const second = pki.issueServer('second');
    copyFileSync(first.cert, cert);
    copyFileSync(first.key, key);
    const server = await spawnServer([
      '--store',
      'memory:',
      '--tls-port',
      '0',
      '--tls-cert',
      cert,
      '--tls-key',
      key,
    ]);
    try {
      const tlsLine = /tls:\/\/127\.0\.0\.1:(\d+)/;
      await waitFor(server.stdout, (text) => tlsLine.test(text), 5_000, 'the TLS address');
      const tlsPort = Number(tlsLine.exec(server.stdout())?.[1]);
      const subjectNow = async (): Promise<string | undefined> => {
        const socket: TLSSocket = connectTls({
          host: '127.0.0.1',
          port: tlsPort,
          ca: pki.read(pki.caCert),
        });
        await once(socket, 'secureConnect');
        const cn = socket.getPeerCertificate().subject.CN;
        socket.destroy();
        return Array.isArray(cn) ? cn[0] : cn;
      };
      assert.equal(await subjectNow(), 'first');
      copyFileSync(second.cert, cert);
      copyFileSync(second.key, key);
      server.child.kill('SIGHUP');
      await waitFor(
        () => server.stderr(),
        (text) => text.includes('TLS certificates reloaded'),
        5_000,
        'the reload',
      );
      assert.equal(await subjectNow(), 'second');
      // A broken file on the next reload keeps the working certificate.
      writeFileSync(cert, 'not a certificate');
      server.child.kill('SIGHUP');
      await waitFor(
        () => server.stderr(),
        (text) => text.includes('previous ones stay in use'),
        5_000,
        'the failed reload',
      );
      assert.equal(await subjectNow(), 'second');
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });
});

describe('Unix domain socket', () => {
  it('serves the lab session, stores "unix" as the peer, applies --unix-mode, removes the file on shutdown', async () => {
    const path = join(dir, 'lab.sock');
    const { server, store } = await serve({ unixPath: path, unixMode: 0o600 });
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const client = await connect({ address: `unix:${path}` });
    await client.helo('local');
    await client.data('over a unix socket');
    await client.quit();
    assert.equal((await store.read(0, 10))[0]?.peer, 'unix');
    await server.close();
    servers.splice(servers.indexOf(server), 1);
    assert.throws(() => statSync(path), /ENOENT/);
  });

  it('replaces a stale socket file left by a crashed server', async () => {
    const path = join(dir, 'stale.sock');
    // A socket file with no server behind it: a server killed with SIGKILL leaves one.
    const crashed = await spawnServer(['--store', 'memory:', '--unix', path]);
    await crashed.stop('SIGKILL');
    assert.ok(statSync(path).isSocket(), 'the stale socket file is there');
    const { server } = await serve({ unixPath: path });
    const raw = await RawClient.openUnix(path);
    raw.write('HELO\r\n');
    await raw.untilBytes(8);
    assert.equal(raw.text, '100 OK\r\n');
    raw.close();
    assert.equal(server.stats.connectionsTotal, 1);
  });

  it('never deletes a regular file, nor the socket of a live server', async () => {
    const file = join(dir, 'precious.txt');
    writeFileSync(file, 'keep me');
    const onFile = await runHelo(['server', '--store', 'memory:', '--port', '0', '--unix', file]);
    assertFailed(onFile, 1, /it exists and is not a socket/);
    assert.equal(statSync(file).size, 'keep me'.length);

    const livePath = join(dir, 'live.sock');
    const live = createServer().listen(livePath);
    await once(live, 'listening');
    try {
      const onLive = await runHelo([
        'server',
        '--store',
        'memory:',
        '--port',
        '0',
        '--unix',
        livePath,
      ]);
      assertFailed(onLive, 1, /another server is using it/);
      assert.ok(statSync(livePath).isSocket(), 'the live socket is untouched');
    } finally {
      live.close();
    }
  });
});

describe('UDP on the command line', () => {
  it('helo server --udp-port answers datagrams; helo client and helo send speak udp://', async () => {
    const db = join(dir, 'udp.db');
    const server = await spawnServer(['--store', `sqlite:${db}`, '--udp-port', '0']);
    try {
      const udpLine = /udp:\/\/127\.0\.0\.1:(\d+)/;
      await waitFor(server.stdout, (text) => udpLine.test(text), 5_000, 'the UDP address');
      const address = `udp://127.0.0.1:${udpLine.exec(server.stdout())?.[1]}`;
      const client = await runHelo(['client', address], {
        input: 'HELO lab\nDATA\nfirst payload\nFOO\nQUIT\n',
      });
      assert.equal(client.status, 0, client.stderr);
      assert.equal(client.stdout, '100 OK\n300 DRCV\n400 BCMD\n200 BYE\n');
      const send = await runHelo(['send', address, 'second', 'third']);
      assert.equal(send.status, 0, send.stderr);
    } finally {
      assert.equal(await server.stop(), 0);
    }
    const exported = await runHelo(['store', 'export', '--store', `sqlite:${db}`]);
    const records = exported.stdout
      .trim()
      .split('\n')
      .map(
        (line) =>
          JSON.parse(line) as { payloadBase64: string; name: string | null; session: string },
      );
    assert.deepEqual(
      records.map((r) => Buffer.from(r.payloadBase64, 'base64').toString()),
      ['first payload', 'second', 'third'],
    );
    assert.ok(
      records.every((r) => r.name === null),
      'no HELO name over UDP (§6)',
    );
    assert.equal(new Set(records.map((r) => r.session)).size, 3, 'a session id per datagram');
  });
});
