import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  crc32c,
  MAX_HEADER_BYTES,
  ProxyHeaderParser,
  type ProxyParse,
} from '../../src/core/proxy-header.js';
import { proxyV1, proxyV2 } from '../../support/proxy-header-bytes.js';
import { splitAt } from '../helpers/vectors.js';

/** Pushes `pieces` in order until the answer is final; the rest is every byte after the header. */
function parse(pieces: readonly Buffer[]): { result: ProxyParse; rest: Buffer; peak: number } {
  const parser = new ProxyHeaderParser();
  let result: ProxyParse = { kind: 'need-more' };
  let peak = 0;
  let index = 0;
  for (; index < pieces.length && result.kind === 'need-more'; index++) {
    result = parser.push(pieces[index]!);
    peak = Math.max(peak, parser.bufferedBytes);
  }
  const rest =
    result.kind === 'done' ? Buffer.concat([result.rest, ...pieces.slice(index)]) : Buffer.alloc(0);
  return { result, rest, peak };
}

/** The outcome without the Buffer, comparable across splits. */
function outcome(pieces: readonly Buffer[]): unknown {
  const { result, rest } = parse(pieces);
  if (result.kind !== 'done') return result;
  return { header: result.header, rest: rest.toString('latin1') };
}

const bytes = (text: string): Buffer => Buffer.from(text, 'latin1');
const AFTER = bytes('HELO\r\nDATA hi\r\n');

/** Real headers: the examples of HAProxy's proxy-protocol.txt and a capture of HAProxy's v2. */
const REAL: { name: string; header: Buffer; expected: unknown }[] = [
  {
    name: 'v1 TCP4',
    header: bytes('PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n'),
    expected: {
      version: 1,
      command: 'proxy',
      source: { address: '192.168.0.1', port: 56324 },
      destination: { address: '192.168.0.11', port: 443 },
      consumed: 47,
    },
  },
  {
    name: 'v1 TCP6',
    header: bytes('PROXY TCP6 2001:db8::1 2001:db8::2 65535 7777\r\n'),
    expected: {
      version: 1,
      command: 'proxy',
      source: { address: '2001:db8::1', port: 65535 },
      destination: { address: '2001:db8::2', port: 7777 },
      consumed: 47,
    },
  },
  {
    name: 'v1 TCP4 (worst case: 56 bytes)',
    header: bytes('PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n'),
    expected: {
      version: 1,
      command: 'proxy',
      source: { address: '255.255.255.255', port: 65535 },
      destination: { address: '255.255.255.255', port: 65535 },
      consumed: 56,
    },
  },
  {
    name: 'v1 TCP6 (worst case: 104 bytes)',
    header: bytes(
      'PROXY TCP6 ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n'.replace(
        /f\.\.\.f/g,
        'ffff:ffff:ffff:ffff:ffff:ffff',
      ),
    ),
    expected: {
      version: 1,
      command: 'proxy',
      source: { address: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', port: 65535 },
      destination: { address: 'ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff', port: 65535 },
      consumed: 104,
    },
  },
  {
    name: 'v1 UNKNOWN (short form)',
    header: bytes('PROXY UNKNOWN\r\n'),
    expected: { version: 1, command: 'local', consumed: 15 },
  },
  {
    name: 'v1 UNKNOWN (worst case: 107 bytes)',
    header: bytes(
      'PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n'.replace(
        /f\.\.\.f/g,
        'ffff:ffff:ffff:ffff:ffff:ffff',
      ),
    ),
    expected: { version: 1, command: 'local', consumed: 107 },
  },
  {
    name: 'v2 PROXY TCP4 (HAProxy capture)',
    header: Buffer.from('0d0a0d0a000d0a515549540a2111000cac130001ac130003a6520050', 'hex'),
    expected: {
      version: 2,
      command: 'proxy',
      source: { address: '172.19.0.1', port: 42578 },
      destination: { address: '172.19.0.3', port: 80 },
      consumed: 28,
    },
  },
  {
    name: 'v2 PROXY TCP6',
    header: proxyV2({
      family: 'inet6',
      source: { address: '2001:db8:0:0:1:0:0:1', port: 1234 },
      destination: { address: '::1', port: 7777 },
    }),
    expected: {
      version: 2,
      command: 'proxy',
      source: { address: '2001:db8::1:0:0:1', port: 1234 },
      destination: { address: '::1', port: 7777 },
      consumed: 52,
    },
  },
  {
    name: 'v2 LOCAL (a health check)',
    header: proxyV2({ command: 'local', family: 'unspec' }),
    expected: { version: 2, command: 'local', consumed: 16 },
  },
  {
    name: 'v2 PROXY UNIX',
    header: proxyV2({
      family: 'unix',
      source: { address: '/run/client.sock', port: 0 },
      destination: { address: '/run/helo.sock', port: 0 },
    }),
    expected: {
      version: 2,
      command: 'proxy',
      source: { address: '/run/client.sock', port: 0 },
      destination: { address: '/run/helo.sock', port: 0 },
      consumed: 232,
    },
  },
  {
    name: 'v2 PROXY TCP4 with TLVs (ALPN, authority, NOOP)',
    header: proxyV2({
      tlvs: [
        [0x01, bytes('h2')],
        [0x02, bytes('example.com')],
        [0x04, Buffer.alloc(5)],
      ],
    }),
    expected: {
      version: 2,
      command: 'proxy',
      source: { address: '203.0.113.7', port: 40000 },
      destination: { address: '192.0.2.1', port: 7777 },
      consumed: 28 + 5 + 14 + 8,
    },
  },
];

/** A v2 header with a PP2_TYPE_CRC32C TLV that matches (or, `corrupt`, does not). */
function withCrc(corrupt: boolean): Buffer {
  const header = proxyV2({ tlvs: [[0x03, Buffer.alloc(4)]] });
  header.writeUInt32BE((crc32c(header) ^ (corrupt ? 1 : 0)) >>> 0, header.length - 4);
  return header;
}

/** A v2 header whose one TLV claims a byte more than the header holds. */
function tlvPastTheEnd(): Buffer {
  const header = proxyV2({ tlvs: [[0x04, Buffer.alloc(3)]] });
  header.writeUInt16BE(4, 28 + 1);
  return header;
}

const INVALID: { name: string; input: Buffer }[] = [
  { name: 'HELO (no header)', input: bytes('HELO\r\n') },
  { name: 'lower-case proxy', input: bytes('proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n') },
  { name: 'bare LF', input: bytes('PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n') },
  { name: 'two spaces', input: bytes('PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n') },
  { name: 'trailing space', input: bytes('PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n') },
  { name: 'port 65536', input: bytes('PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n') },
  { name: 'leading zero port', input: bytes('PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n') },
  { name: 'signed port', input: bytes('PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n') },
  { name: 'IPv6 in TCP4', input: bytes('PROXY TCP4 ::1 ::1 1 2\r\n') },
  { name: 'IPv4 in TCP6', input: bytes('PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n') },
  { name: 'bad IPv4', input: bytes('PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n') },
  { name: 'leading zero IPv4', input: bytes('PROXY TCP4 01.2.3.4 5.6.7.8 1 2\r\n') },
  { name: 'UDP4', input: bytes('PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n') },
  { name: '108-byte v1', input: bytes(`PROXY UNKNOWN ${'x'.repeat(92)}\r\n`) },
  { name: 'v1 without CRLF past 107 bytes', input: bytes(`PROXY ${'x'.repeat(200)}`) },
  {
    name: 'v2 version 1',
    input: Buffer.concat([proxyV2().subarray(0, 12), Buffer.from([0x11, 0x11, 0, 12])]),
  },
  {
    name: 'v2 command 2',
    input: Buffer.concat([proxyV2().subarray(0, 12), Buffer.from([0x22, 0x11, 0, 12])]),
  },
  {
    name: 'v2 family 4',
    input: Buffer.concat([proxyV2().subarray(0, 12), Buffer.from([0x21, 0x41, 0, 12])]),
  },
  {
    name: 'v2 DGRAM',
    input: Buffer.concat([proxyV2().subarray(0, 12), Buffer.from([0x21, 0x12, 0, 12])]),
  },
  {
    name: 'v2 short address block',
    input: Buffer.concat([proxyV2().subarray(0, 12), Buffer.from([0x21, 0x11, 0, 11])]),
  },
  {
    name: 'v2 too long',
    input: Buffer.concat([proxyV2().subarray(0, 12), Buffer.from([0x21, 0x11, 0xff, 0xff])]),
  },
  { name: 'v2 TLV past the end', input: tlvPastTheEnd() },
  { name: 'v2 bad signature', input: Buffer.from('0d0a0d0a000d0a515549540b21110000', 'hex') },
  { name: 'v2 CRC32C mismatch', input: withCrc(true) },
];

describe('PROXY protocol header parser (docs/PROTOCOL.md §10)', () => {
  it('computes CRC32C (check value of "123456789")', () => {
    assert.equal(crc32c(bytes('123456789')), 0xe3069283);
  });

  for (const { name, header, expected } of REAL) {
    it(`reads ${name}, whole, byte by byte and at random splits`, () => {
      const input = Buffer.concat([header, AFTER]);
      const whole = outcome([input]);
      assert.deepEqual(whole, { header: expected, rest: AFTER.toString('latin1') });
      assert.deepEqual(outcome([...input].map((byte) => Buffer.from([byte]))), whole);
      fc.assert(
        fc.property(fc.array(fc.nat(), { maxLength: 8 }), (cuts) => {
          assert.deepEqual(outcome(splitAt(input, cuts)), whole);
        }),
        { numRuns: 100 },
      );
    });
  }

  it('accepts a matching CRC32C TLV', () => {
    assert.equal(parse([withCrc(false)]).result.kind, 'done');
  });

  for (const { name, input } of INVALID) {
    it(`refuses ${name}, whole and byte by byte`, () => {
      assert.equal(parse([input]).result.kind, 'invalid', name);
      assert.equal(parse([...input].map((byte) => Buffer.from([byte]))).result.kind, 'invalid');
    });
  }

  it('refuses a line that cannot start a header at its first byte', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 20 }), (data) => {
        fc.pre(data[0] !== 0x50 && data[0] !== 0x0d);
        const parser = new ProxyHeaderParser();
        assert.equal(parser.push(Buffer.from(data.subarray(0, 1))).kind, 'invalid');
      }),
    );
  });

  it('never throws, holds a bounded amount, and reads nothing past the header (fuzz)', () => {
    const prefix = fc.constantFrom(
      Buffer.alloc(0),
      bytes('PROXY '),
      bytes('PROXY TCP4 '),
      proxyV2().subarray(0, 12),
      proxyV2().subarray(0, 16),
    );
    fc.assert(
      fc.property(
        prefix,
        fc.uint8Array({ maxLength: 3000 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (head, tail, cuts) => {
          const input = Buffer.concat([head, tail]);
          const { result, rest, peak } = parse(splitAt(input, cuts));
          assert.ok(peak <= MAX_HEADER_BYTES, `held ${peak}`);
          if (result.kind === 'done') {
            assert.equal(rest.length, input.length - result.header.consumed);
            // Changing what follows the header changes nothing about it.
            const other = Buffer.concat([input.subarray(0, result.header.consumed), bytes('X')]);
            const again = parse([other]).result;
            assert.equal(again.kind, 'done');
            if (again.kind === 'done') assert.deepEqual(again.header, result.header);
          }
        },
      ),
      { numRuns: 500 },
    );
  });

  it('reads v1 headers built from any addresses and ports (fuzz)', () => {
    const endpoint = fc.record({
      address: fc.oneof(fc.ipV4(), fc.ipV6()),
      port: fc.integer({ min: 0, max: 65535 }),
    });
    fc.assert(
      fc.property(endpoint, fc.integer({ min: 0, max: 65535 }), (source, port) => {
        const destination = { address: source.address, port };
        const header = proxyV1(source, destination);
        const { result } = parse([header]);
        if (header.length > 107) {
          assert.equal(result.kind, 'invalid');
          return;
        }
        assert.equal(result.kind, 'done');
        if (result.kind === 'done') {
          assert.deepEqual(result.header.source, { ...source });
          assert.equal(result.header.consumed, header.length);
        }
      }),
      { numRuns: 300 },
    );
  });
});
