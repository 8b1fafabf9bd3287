/**
 * interpretDatagram (src/core/datagram.ts), pure: how one datagram is read
 * (protocol.md §6), checked against TCP's core on a fresh connection. The
 * same rules over a real socket: test/udp/udp-endpoint.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { interpretDatagram, type DatagramRequest } from '../../src/core/datagram.js';
import { LineFramer } from '../../src/core/framer.js';
import { ALL_REPLIES, Replies } from '../../src/core/replies.js';
import { Session, type SessionAction } from '../../src/core/session.js';
import { datagramArbitrary } from './datagram-arbitrary.js';

/** What an action means on the wire, for comparisons. */
function describeRequest(action: DatagramRequest | SessionAction): string {
  switch (action.type) {
    case 'reply':
      return `reply ${action.reply.code}`;
    case 'store':
      return `store ${action.payload.toString('hex')}`;
    case 'reject':
      return 'no reply';
    case 'await-payload':
      return 'await-payload';
  }
}

/** The actions of TCP's core for `line` + CRLF on a fresh connection. */
function tcpActions(line: Buffer, maxLineBytes: number): SessionAction[] {
  const session = new Session();
  const actions: SessionAction[] = [];
  new LineFramer(maxLineBytes).push(Buffer.concat([line, Buffer.from('\r\n')]), {
    onLine: (chunk, start, end) => {
      actions.push(session.onLine(chunk, start, end));
      return true;
    },
    onLongLine: () => {
      actions.push(session.onLongLine());
      return true;
    },
  });
  return actions;
}

describe('interpretDatagram (pure)', () => {
  const MAX = 24;

  it('never throws, and asks for a reply from the table, a store, or silence', () => {
    const known = new Set(ALL_REPLIES);
    fc.assert(
      fc.property(datagramArbitrary, (datagram) => {
        const request = interpretDatagram(datagram, MAX);
        if (request.type === 'reply') assert.ok(known.has(request.reply));
        if (request.type === 'store') assert.ok(request.payload.length <= MAX);
      }),
      { numRuns: 2_000 },
    );
  });

  it('a final CRLF changes nothing', () => {
    fc.assert(
      fc.property(datagramArbitrary, (datagram) => {
        fc.pre(datagram.at(-1) !== 0x0a);
        const withCrlf = Buffer.concat([datagram, Buffer.from('\r\n')]);
        assert.equal(
          describeRequest(interpretDatagram(withCrlf, MAX)),
          describeRequest(interpretDatagram(datagram, MAX)),
        );
        if (datagram.at(-1) !== 0x0d) {
          const withLf = Buffer.concat([datagram, Buffer.from('\n')]);
          assert.equal(
            describeRequest(interpretDatagram(withLf, MAX)),
            describeRequest(interpretDatagram(datagram, MAX)),
          );
        }
      }),
      { numRuns: 2_000 },
    );
  });

  it('a one-line datagram means what the same line means on a new TCP connection', () => {
    fc.assert(
      fc.property(datagramArbitrary, (datagram) => {
        fc.pre(!datagram.includes(0x0a));
        const [action, ...rest] = tcpActions(datagram, MAX);
        assert.equal(rest.length, 0);
        const expected =
          action!.type === 'await-payload'
            ? `reply ${Replies.BCMD.code}`
            : describeRequest(action!);
        assert.equal(describeRequest(interpretDatagram(datagram, MAX)), expected);
      }),
      { numRuns: 2_000 },
    );
  });

  it('DATA LF payload stores any payload without LF up to the limit', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: MAX }), fc.boolean(), (array, crlf) => {
        const payload = Buffer.from(array.filter((byte) => byte !== 0x0a));
        const datagram = Buffer.concat([
          Buffer.from(crlf ? 'DATA\r\n' : 'DATA\n'),
          payload,
          Buffer.from('\r\n'),
        ]);
        assert.equal(
          describeRequest(interpretDatagram(datagram, MAX)),
          `store ${payload.toString('hex')}`,
        );
      }),
      { numRuns: 1_000 },
    );
  });
});
