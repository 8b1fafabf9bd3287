/** How replies are judged: codes, exact lines, multi-line replies. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { InvalidOptionError } from '../../src/errors.js';
import {
  anyReply,
  exactReply,
  lineEquals,
  OTHER_CODE,
  replyCodeOf,
} from '../../src/loadgen/reply-expectation.js';

describe('replyCodeOf', () => {
  it('reads the three digits of a reply line', () => {
    const code = (text: string): number => replyCodeOf(Buffer.from(text), 0, text.length);
    assert.equal(code('100 OK\r\n'), 100);
    assert.equal(code('503 BUSY\r\n'), 503);
    assert.equal(code('007\n'), 7);
    assert.equal(code('+PONG\r\n'), OTHER_CODE);
    assert.equal(code('10\n'), OTHER_CODE);
    assert.equal(code('1x0 OK\n'), OTHER_CODE);
  });

  it('matches a parse of the first three characters, at any offset', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 12 }),
        fc.uint8Array({ maxLength: 6 }),
        (prefix, line) => {
          const buffer = Buffer.concat([prefix, line, Buffer.from('tail')]);
          const start = prefix.length;
          const end = start + line.length;
          const head = Buffer.from(line.subarray(0, 3)).toString('latin1');
          const expected = line.length >= 3 && /^[0-9]{3}$/.test(head) ? Number(head) : OTHER_CODE;
          assert.equal(replyCodeOf(buffer, start, end), expected);
        },
      ),
    );
  });
});

describe('lineEquals', () => {
  it('agrees with Buffer.equals on any slice', () => {
    fc.assert(
      fc.property(
        fc.uint8Array({ maxLength: 10 }),
        fc.uint8Array({ maxLength: 20 }),
        fc.nat(),
        fc.nat(),
        (expected, data, a, b) => {
          const buffer = Buffer.from(data);
          const start = Math.min(a, b) % (buffer.length + 1);
          const end = Math.max(start, Math.max(a, b) % (buffer.length + 1));
          const same = Buffer.from(expected).equals(buffer.subarray(start, end));
          assert.equal(lineEquals(Buffer.from(expected), buffer, start, end), same);
        },
      ),
    );
  });
});

describe('exactReply and anyReply', () => {
  it('cut the expected bytes into lines, each with its LF', () => {
    const reply = exactReply(Buffer.from('$5\r\nhello\r\n'));
    assert.equal(reply.lineCount, 2);
    assert.deepEqual(reply.lines, [Buffer.from('$5\r\n'), Buffer.from('hello\r\n')]);
    assert.deepEqual(anyReply(3), { lineCount: 3, lines: null });
  });

  it('refuse an expected reply that does not end a line', () => {
    assert.throws(() => exactReply(Buffer.from('+PONG')), InvalidOptionError);
    assert.throws(() => exactReply(Buffer.alloc(0)), InvalidOptionError);
  });
});
