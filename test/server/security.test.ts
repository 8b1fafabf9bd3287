/**
 * Exposure and secrets: which hosts count as loopback, the start-up warning
 * for a server on the network, the HTTP port's access token (required on
 * every path but the probes, by header, query or cookie, and on /ws), and
 * no payload bytes in the logs, even at the most verbose level.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { exposureWarnings, httpTokenFor, isLoopbackHost } from '../../src/server/exposure.js';
import { resolveServerOptions } from '../../src/server/options.js';
import { RawClient, delay } from '../helpers/raw-client.js';
import { httpRequest, upgradeStatus } from '../helpers/http-client.js';
import { spawnServer } from '../../support/server-process.js';
import { spawnWebServer } from '../../support/web-server.js';

const TOKEN = 'lab-token-0123456789abcdef';

describe('exposure rules', () => {
  it('knows loopback addresses', () => {
    for (const host of [
      '127.0.0.1',
      '127.3.4.5',
      '::1',
      '[::1]',
      'localhost',
      '::ffff:127.0.0.1',
    ]) {
      assert.equal(isLoopbackHost(host), true, host);
    }
    for (const host of ['0.0.0.0', '::', '192.168.1.10', '10.0.0.1', 'example.org', '128.0.0.1']) {
      assert.equal(isLoopbackHost(host), false, host);
    }
  });

  it('warns when listening beyond loopback, naming the plain listeners', () => {
    const off = { tlsPort: null, udpPort: null, httpPort: null };
    assert.deepEqual(exposureWarnings({ host: '127.0.0.1', ...off }), []);
    const [all] = exposureWarnings({ host: '0.0.0.0', ...off, udpPort: 7777, httpPort: 7778 });
    assert.match(
      all!,
      /^listening on all interfaces without TLS on the TCP port, UDP, the HTTP port/,
    );
    assert.match(all!, /--tls-port/);
    const [withTls] = exposureWarnings({ host: '10.0.0.5', ...off, tlsPort: 7443 });
    assert.match(withTls!, /^listening on 10\.0\.0\.5 without TLS on the TCP port:/);
    assert.match(withTls!, /TLS port only/);
  });

  it('needs an HTTP token beyond loopback, made up when none is given', () => {
    assert.deepEqual(httpTokenFor('127.0.0.1', 7778, null), { token: null, generated: false });
    assert.deepEqual(httpTokenFor('0.0.0.0', null, null), { token: null, generated: false });
    assert.deepEqual(httpTokenFor('127.0.0.1', 7778, TOKEN), { token: TOKEN, generated: false });
    const made = httpTokenFor('0.0.0.0', 7778, null);
    assert.equal(made.generated, true);
    assert.match(made.token!, /^[A-Za-z0-9_-]{22}$/);
    assert.notEqual(made.token, httpTokenFor('0.0.0.0', 7778, null).token);
  });

  // The rule lives in the options, not only in `helo server`: a program that
  // calls startServer({ host: '0.0.0.0', httpPort }) gets a token too.
  it('resolveServerOptions makes a token up for an HTTP port beyond loopback', () => {
    const exposed = resolveServerOptions({ host: '0.0.0.0', httpPort: 7778 });
    assert.match(exposed.httpToken ?? '', /^[A-Za-z0-9_-]{22}$/);
    assert.equal(resolveServerOptions({ host: '::', httpPort: 0 }).httpToken?.length, 22);
    assert.equal(resolveServerOptions({ host: '127.0.0.1', httpPort: 7778 }).httpToken, null);
    assert.equal(resolveServerOptions({ host: '::1', httpPort: 7778 }).httpToken, null);
    assert.equal(resolveServerOptions({ host: '0.0.0.0' }).httpToken, null);
    const given = { host: '0.0.0.0', httpPort: 7778, httpToken: TOKEN };
    assert.equal(resolveServerOptions(given).httpToken, TOKEN);
    // Resolving again (cluster workers, forked children) keeps the token.
    assert.equal(resolveServerOptions(exposed).httpToken, exposed.httpToken);
  });
});

describe('the HTTP access token (real server)', () => {
  it('is required everywhere but /healthz and /readyz, by header, query or cookie', async () => {
    const { server, httpPort: port } = await spawnWebServer([
      '--store',
      'memory:',
      '--http-token',
      TOKEN,
    ]);
    try {
      await delay(50); // the web client line follows the ws:// one
      assert.match(
        server.stdout(),
        new RegExp(`dashboard on http://127\\.0\\.0\\.1:${port}/\\?token=${TOKEN}\\n`),
      );
      assert.equal((await httpRequest(port, '/healthz')).status, 200);
      assert.equal((await httpRequest(port, '/readyz')).status, 200);
      for (const path of ['/', '/metrics', '/events', '/app.js']) {
        const refused = await httpRequest(port, path);
        assert.equal(refused.status, 401, path);
        assert.equal(refused.headers['www-authenticate'], 'Bearer realm="helo"');
      }
      assert.equal(
        (
          await httpRequest(port, '/metrics', {
            headers: { authorization: 'Bearer wrong-token-0123456789' },
          })
        ).status,
        401,
      );
      assert.equal(
        (await httpRequest(port, '/metrics', { headers: { authorization: `Bearer ${TOKEN}` } }))
          .status,
        200,
      );
      const page = await httpRequest(port, `/?token=${TOKEN}`);
      assert.equal(page.status, 200);
      const cookie = page.headers['set-cookie']![0]!;
      assert.match(cookie, /^helo_token=[^;]+; Path=\/; HttpOnly; SameSite=Strict$/);
      // What the page's own requests carry from then on.
      const asPage = { cookie: cookie.split(';')[0]! };
      assert.equal((await httpRequest(port, '/app.js', { headers: asPage })).status, 200);
      assert.equal((await httpRequest(port, '/metrics', { headers: asPage })).status, 200);

      assert.equal(await upgradeStatus(`ws://127.0.0.1:${port}/ws`), 401);
      assert.equal(await upgradeStatus(`ws://127.0.0.1:${port}/ws?token=${TOKEN}`), 'open');
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });
});

describe('logs', () => {
  it('never contain what a client sent as payload or command, even at trace level', async () => {
    const server = await spawnServer([
      '--store',
      'memory:',
      '--log-level',
      'trace',
      '--max-line',
      '64',
    ]);
    try {
      const marker = 'S3CRET-PAYLOAD-7f3a';
      const client = await RawClient.open(server.port);
      client.write(
        `HELO\r\nDATA ${marker}-1\r\nDATA\r\n${marker}-2\r\n${marker}-3 is not a command\r\n` +
          `DATA ${marker}-${'x'.repeat(80)}\r\nQUIT\r\n`,
      );
      await client.untilEnded();
      assert.equal(
        client.text,
        '100 OK\r\n300 DRCV\r\n300 DRCV\r\n400 BCMD\r\n401 LONG\r\n200 BYE\r\n',
      );
      const http = await RawClient.open(server.port);
      http.write(`GET /${marker} HTTP/1.1\r\nHost: x\r\n\r\n`);
      await http.untilEnded();
      await delay(100);
      assert.ok(server.stderr().includes('session closed'), 'the logs are there');
      assert.ok(!server.stderr().includes(marker), 'no payload or command bytes in the logs');
    } finally {
      await server.stop();
    }
  });
});
