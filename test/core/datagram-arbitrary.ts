/**
 * Random datagrams for the UDP properties: the pure ones (datagram.test.ts)
 * and those over a real socket (test/udp/udp-endpoint.test.ts).
 */
import fc from 'fast-check';

const TOKENS = [
  'HELO',
  'helo',
  'DATA',
  'data',
  'QUIT',
  ' ',
  '\t',
  '\r',
  '\n',
  '\r\n',
  'x',
  'alice',
  'GET / HTTP/1.1',
  'Host: a',
  '\x00',
  '\xff',
];

/** Random datagrams: raw bytes, and sequences of protocol-ish tokens that reach every branch. */
export const datagramArbitrary = fc.oneof(
  fc.uint8Array({ maxLength: 120 }).map((array) => Buffer.from(array)),
  fc
    .array(fc.constantFrom(...TOKENS), { maxLength: 10 })
    .map((parts) => Buffer.from(parts.join(''), 'latin1')),
);
