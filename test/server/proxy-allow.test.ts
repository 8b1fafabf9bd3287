/**
 * `--proxy-allow` (src/server/proxy-stage.ts): CIDR blocks, and a bare
 * address as that one host (/32, /128), since `--proxy-allow 127.0.0.1` is
 * what people type first; anything else is refused naming the option.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isTrustedSource, proxyAllowList } from '../../src/server/proxy-stage.js';

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

  it('refuses what is neither, naming the option', () => {
    for (const bad of ['localhost', '10.0.0.0/33', '::1/129', '1.2.3.4/', '']) {
      assert.throws(() => proxyAllowList([bad]), /proxyAllow must be CIDR blocks/, bad);
    }
  });
});
