/**
 * `--proxy-allow` (src/server/proxy-stage.ts): CIDR blocks, and a bare
 * address as that one host (/32, /128), since `--proxy-allow 127.0.0.1` is
 * what people type first; anything else is refused naming the option. And
 * a real server started that way logs both addresses of a session
 * (docs/PROTOCOL.md §10): the client's from the header, the balancer's.
 */
import assert from 'node:assert/strict';
import { isIPv4, isIPv6 } from 'node:net';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { isTrustedSource, proxyAllowList } from '../../src/server/proxy-stage.js';
import { spawnServer } from '../../support/server-process.js';
import { RawClient } from '../helpers/raw-client.js';

describe('proxyAllowList', () => {
  it('trusts the addresses inside CIDR blocks only', () => {
    const allow = proxyAllowList(['10.0.0.0/8', '::1/128']);
    assert.equal(isTrustedSource(allow, '10.200.3.4'), true);
    assert.equal(isTrustedSource(allow, '11.0.0.1'), false);
    assert.equal(isTrustedSource(allow, '::1'), true);
    assert.equal(isTrustedSource(allow, '::2'), false);
  });

  it('reads a bare address as that one host', () => {
    const allow = proxyAllowList(['127.0.0.1', '2001:db8::7']);
    assert.equal(isTrustedSource(allow, '127.0.0.1'), true);
    assert.equal(isTrustedSource(allow, '127.0.0.2'), false);
    assert.equal(isTrustedSource(allow, '2001:db8::7'), true);
    assert.equal(isTrustedSource(allow, '2001:db8::8'), false);
  });

  it('answers as the allow list does, asked again and again, past its cache of answers', () => {
    const allow = proxyAllowList(['10.0.0.0/8', '192.168.4.0/24', '::1/128']);
    const octet = fc.integer({ min: 0, max: 255 });
    const address = fc.oneof(
      fc.constantFrom('10.0.0.1', '192.168.4.9', '192.168.5.9', '::1', '::2', 'nonsense', ''),
      fc.tuple(fc.constantFrom(10, 11, 192), octet, octet, octet).map((parts) => parts.join('.')),
    );
    fc.assert(
      fc.property(fc.array(address, { minLength: 1, maxLength: 3_000 }), (addresses) => {
        for (const each of addresses) {
          const family = isIPv4(each) ? 'ipv4' : isIPv6(each) ? 'ipv6' : null;
          const expected = family !== null && allow.check(each, family);
          assert.equal(isTrustedSource(allow, each), expected, each);
        }
      }),
      { numRuns: 30 },
    );
  });

  it('refuses what is neither, naming the option', () => {
    for (const bad of ['localhost', '10.0.0.0/33', '::1/129', '1.2.3.4/', '']) {
      assert.throws(() => proxyAllowList([bad]), /proxyAllow must be CIDR blocks/, bad);
    }
  });
});

describe('helo server --proxy-protocol --proxy-allow 127.0.0.1', () => {
  it('serves a trusted balancer and logs the client and the balancer', async () => {
    const server = await spawnServer([
      '--store',
      'memory:',
      '--proxy-protocol',
      '--proxy-allow',
      '127.0.0.1',
    ]);
    try {
      const client = await RawClient.open(server.port);
      client.write('PROXY TCP4 203.0.113.7 127.0.0.1 5555 7777\r\nHELO\r\nQUIT\r\n');
      await client.untilEnded();
      assert.equal(client.text, '100 OK\r\n200 BYE\r\n');
      const deadline = Date.now() + 5000;
      while (!server.stderr().includes('session closed') && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      const line = server
        .stderr()
        .split('\n')
        .find((entry) => entry.includes('session closed'));
      assert.ok(line, server.stderr());
      const summary = JSON.parse(line) as { peer: string; proxy?: string };
      assert.equal(summary.peer, '203.0.113.7:5555');
      assert.match(summary.proxy ?? '', /^127\.0\.0\.1:\d+$/);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });
});
