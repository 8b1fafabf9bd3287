/**
 * The client's reply parser: a reply line's shape, and bytes -> replies at
 * any split points (the client-side twin of the server's framing rule,
 * protocol.md §2).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ALL_REPLIES } from '../../src/core/replies.js';
import { MAX_REPLY_BYTES, parseReply, ReplyParser, type Reply } from '../../src/client/reply.js';

interface Parsed {
  readonly replies: Reply[];
  readonly malformed: string[];
}

function parseChunks(chunks: readonly Buffer[]): Parsed {
  const parser = new ReplyParser();
  const replies: Reply[] = [];
  const malformed: string[] = [];
  const sink = {
    onReply: (reply: Reply) => replies.push(reply),
    onMalformed: (line: string) => malformed.push(line),
  };
  for (const chunk of chunks) parser.push(chunk, sink);
  return { replies, malformed };
}

/** Cuts `bytes` at the given offsets (taken modulo its length, in order). */
function splitAt(bytes: Buffer, cuts: readonly number[]): Buffer[] {
  const points = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let start = 0;
  for (const point of points) {
    chunks.push(bytes.subarray(start, point));
    start = point;
  }
  chunks.push(bytes.subarray(start));
  return chunks;
}

const replyArbitrary = fc.record({
  code: fc.integer({ min: 0, max: 999 }),
  token: fc.stringMatching(/^[A-Z][A-Z0-9]{0,7}$/),
  crlf: fc.boolean(),
});

// fast-check prints the seed of a failing run; FC_SEED replays it.
const seed = process.env.FC_SEED === undefined ? {} : { seed: Number(process.env.FC_SEED) };

describe('parseReply', () => {
  it('parses every reply of the table', () => {
    for (const info of ALL_REPLIES) {
      const line = `${info.code} ${info.token}`;
      assert.deepEqual(parseReply(line), { code: info.code, token: info.token, line });
    }
  });

  it('refuses lines that are not replies', () => {
    for (const line of [
      '',
      '100',
      '100 ',
      '100  OK',
      ' 100 OK',
      '10 OK',
      '1000 OK',
      'abc OK',
      '100 ok',
      '100 OK ',
      '100\tOK',
      '100 OK\r',
    ]) {
      assert.equal(parseReply(line), null, JSON.stringify(line));
    }
  });
});

describe('ReplyParser', () => {
  it('reads many replies from one chunk and one reply from many chunks', () => {
    const wire = Buffer.from('100 OK\r\n300 DRCV\r\n400 BCMD\r\n200 BYE\r\n');
    const whole = parseChunks([wire]);
    const byteByByte = parseChunks([...wire].map((byte) => Buffer.from([byte])));
    assert.deepEqual(
      whole.replies.map((reply) => reply.line),
      ['100 OK', '300 DRCV', '400 BCMD', '200 BYE'],
    );
    assert.deepEqual(byteByByte, whole);
    assert.deepEqual(whole.malformed, []);
  });

  it('keeps a partial reply until its LF arrives', () => {
    const parser = new ReplyParser();
    const replies: Reply[] = [];
    const sink = {
      onReply: (reply: Reply) => replies.push(reply),
      onMalformed: () => assert.fail(),
    };
    parser.push(Buffer.from('100 O'), sink);
    assert.equal(replies.length, 0);
    parser.push(Buffer.from('K\r'), sink);
    assert.equal(replies.length, 0);
    parser.push(Buffer.from('\n3'), sink);
    assert.deepEqual(replies, [{ code: 100, token: 'OK', line: '100 OK' }]);
  });

  it('gives the same replies whatever the split points', () => {
    fc.assert(
      fc.property(
        fc.array(replyArbitrary, { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 20 }),
        (items, cuts) => {
          const lines = items.map(({ code, token }) => `${String(code).padStart(3, '0')} ${token}`);
          const wire = Buffer.from(
            items.map((item, i) => `${lines[i]}${item.crlf ? '\r\n' : '\n'}`).join(''),
            'latin1',
          );
          const parsed = parseChunks(splitAt(wire, cuts));
          assert.deepEqual(parsed.malformed, []);
          assert.deepEqual(
            parsed.replies.map((reply) => reply.line),
            lines,
          );
          assert.deepEqual(parsed, parseChunks([wire]));
        },
      ),
      { numRuns: 300, ...seed },
    );
  });

  it('stops at the first malformed line, at any split points, reporting it once', () => {
    fc.assert(
      fc.property(
        fc.array(replyArbitrary, { maxLength: 5 }),
        fc.oneof(
          fc.constantFrom('HTTP/1.1 200 OK', '100', '', 'hello', '100 ok'),
          fc
            .uint8Array({ minLength: 1, maxLength: 2 * MAX_REPLY_BYTES })
            .map((bytes) => Buffer.from(bytes.filter((byte) => byte !== 0x0a)).toString('latin1')),
        ),
        fc.array(fc.nat(), { maxLength: 12 }),
        (before, garbage, cuts) => {
          fc.pre(parseReply(garbage.replace(/\r$/, '')) === null);
          const lines = before.map(
            ({ code, token }) => `${String(code).padStart(3, '0')} ${token}`,
          );
          const wire = Buffer.from(
            [...lines, garbage, '100 OK', '200 BYE'].map((line) => `${line}\r\n`).join(''),
            'latin1',
          );
          const parsed = parseChunks(splitAt(wire, cuts));
          assert.deepEqual(
            parsed.replies.map((reply) => reply.line),
            lines,
          );
          assert.equal(parsed.malformed.length, 1);
          assert.deepEqual(parsed, parseChunks([wire]));
        },
      ),
      { numRuns: 300, ...seed },
    );
  });

  it('reports a line longer than any reply without buffering it', () => {
    const parsed = parseChunks([
      Buffer.from('100 OK\r\n'),
      Buffer.alloc(10 * MAX_REPLY_BYTES, 0x41),
    ]);
    assert.deepEqual(
      parsed.replies.map((reply) => reply.line),
      ['100 OK'],
    );
    assert.deepEqual(parsed.malformed, [`a line longer than ${MAX_REPLY_BYTES} bytes`]);
  });
});

describe('ReplyParser, tolerant (helo client for classroom servers)', () => {
  function parseTolerant(chunks: readonly Buffer[]): Parsed {
    const parser = new ReplyParser({ tolerant: true });
    const replies: Reply[] = [];
    const malformed: string[] = [];
    const sink = {
      onReply: (reply: Reply) => replies.push(reply),
      onMalformed: (line: string) => malformed.push(line),
    };
    for (const chunk of chunks) parser.push(chunk, sink);
    parser.end(sink);
    return { replies, malformed };
  }

  it('takes a reply left with a CR by a "\\n\\r" terminator, and goes on after stray lines', () => {
    const parsed = parseTolerant([
      Buffer.from('400 BCMD\n\rCommand-Description: Bad command\n\r100 OK\n\r'),
    ]);
    assert.deepEqual(
      parsed.replies.map((reply) => reply.line),
      ['400 BCMD', '100 OK'],
    );
    // The last lone CR is what is left of a terminator: nothing to show.
    assert.deepEqual(parsed.malformed, ['"\\rCommand-Description: Bad command"']);
  });

  it('shows an unfinished last line', () => {
    const parsed = parseTolerant([Buffer.from('100 OK\r\nBye now')]);
    assert.deepEqual(parsed.malformed, ['"Bye now" (unfinished, no LF)']);
  });

  it('reports the same replies and stray lines whatever the split points', () => {
    const lineArbitrary = fc.oneof(
      replyArbitrary.map(({ code, token, crlf }) =>
        Buffer.from(`${String(code).padStart(3, '0')} ${token}${crlf ? '\r\n' : '\n'}`),
      ),
      fc
        .uint8Array({ maxLength: 80 })
        .map((bytes) =>
          Buffer.concat([Buffer.from(bytes.filter((byte) => byte !== 0x0a)), Buffer.from('\n')]),
        ),
    );
    fc.assert(
      fc.property(
        fc.array(lineArbitrary, { maxLength: 20 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (lines, cuts) => {
          const bytes = Buffer.concat(lines);
          assert.deepEqual(parseTolerant(splitAt(bytes, cuts)), parseTolerant([bytes]));
        },
      ),
      { numRuns: 300, ...seed },
    );
  });
});
