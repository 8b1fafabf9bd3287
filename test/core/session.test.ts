import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Replies } from '../../src/core/replies.js';
import { Session, type SessionAction } from '../../src/core/session.js';

function send(session: Session, line: string | Buffer): SessionAction {
  const bytes = typeof line === 'string' ? Buffer.from(line, 'latin1') : line;
  // Embed the line in a bigger buffer: the session must respect start/end.
  const padded = Buffer.concat([Buffer.from('XX'), bytes, Buffer.from('YY')]);
  return session.onLine(padded, 2, 2 + bytes.length);
}

function randomCase(word: string): fc.Arbitrary<string> {
  return fc
    .array(fc.boolean(), { minLength: word.length, maxLength: word.length })
    .map((flags) =>
      [...word].map((ch, i) => (flags[i] ? ch.toLowerCase() : ch.toUpperCase())).join(''),
    );
}
const blanks = fc.array(fc.constantFrom(' ', '\t'), { maxLength: 4 }).map((b) => b.join(''));
const anyBytes = fc
  .uint8Array({ maxLength: 64 })
  .map((array) => Buffer.from(Array.from(array).filter((b) => b !== 0x0a)));

describe('Session', () => {
  it('starts in command mode with no name', () => {
    const session = new Session();
    assert.equal(session.state, 'command');
    assert.equal(session.name, null);
  });

  it('recognises the command words in any case, with blanks around them (property)', () => {
    fc.assert(
      fc.property(
        randomCase('HELO'),
        randomCase('QUIT'),
        randomCase('DATA'),
        blanks,
        blanks,
        (helo, quit, data, before, after) => {
          const session = new Session();
          assert.deepEqual(send(session, before + helo + after), {
            type: 'reply',
            reply: Replies.OK,
          });
          assert.deepEqual(send(session, before + quit + after), {
            type: 'reply',
            reply: Replies.BYE,
          });
          assert.deepEqual(send(session, before + data + after), { type: 'await-payload' });
          assert.equal(session.state, 'payload');
        },
      ),
    );
  });

  it('takes any bytes as the payload after a bare DATA, byte for byte (property)', () => {
    fc.assert(
      fc.property(anyBytes, (payload) => {
        const session = new Session();
        send(session, 'DATA');
        const action = send(session, payload);
        assert.equal(action.type, 'store');
        assert.ok(action.type === 'store' && action.payload.equals(payload));
        assert.equal(session.state, 'command');
      }),
    );
  });

  it('keeps an inline payload exactly as sent after the one separator (property)', () => {
    fc.assert(
      fc.property(fc.constantFrom(' ', '\t'), anyBytes, (separator, payload) => {
        fc.pre(payload.some((b) => b !== 0x20 && b !== 0x09));
        const action = send(
          new Session(),
          Buffer.concat([Buffer.from('DATA' + separator), payload]),
        );
        assert.ok(action.type === 'store' && action.payload.equals(payload));
      }),
    );
  });

  it('never throws and always answers a command line with a known action (property)', () => {
    fc.assert(
      fc.property(anyBytes, (line) => {
        const action = send(new Session(), line);
        assert.ok(['reply', 'store', 'await-payload', 'reject'].includes(action.type));
      }),
      { numRuns: 1000 },
    );
  });

  it('copies the payload: later changes to the read buffer do not reach it', () => {
    const session = new Session();
    const chunk = Buffer.from('DATA abc');
    const action = session.onLine(chunk, 0, chunk.length);
    chunk.fill(0x21);
    assert.ok(action.type === 'store' && action.payload.toString() === 'abc');
  });

  it('labels the session with HELO <name> and keeps it on a bare HELO', () => {
    const session = new Session();
    send(session, 'HELO  alice \t');
    assert.equal(session.name, 'alice');
    send(session, 'HELO');
    assert.equal(session.name, 'alice');
    send(session, 'HELO bob smith');
    assert.equal(session.name, 'bob smith');
  });

  it('answers an overlong line 401 LONG and leaves payload mode', () => {
    const session = new Session();
    send(session, 'DATA');
    assert.deepEqual(session.onLongLine(), { type: 'reply', reply: Replies.LONG });
    assert.equal(session.state, 'command');
  });

  it('rejects HTTP-looking command lines but stores them as payloads', () => {
    const session = new Session();
    assert.deepEqual(send(session, 'GET / HTTP/1.1'), { type: 'reject' });
    send(session, 'DATA');
    assert.equal(send(session, 'GET / HTTP/1.1').type, 'store');
  });
});
