import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LineFramer, type LineSink } from '../../src/core/framer.js';
import { splitAt } from '../helpers/vectors.js';

const LONG = Symbol('LONG');
type Item = string | typeof LONG;

/**
 * Frames `steps` in order — a Buffer is pushed, `null` is a silence that
 * ends the partial line (§9) — and lists what came out (lines as latin1),
 * with the most bytes the framer held at any point.
 */
function frame(maxLineBytes: number, steps: (Buffer | null)[]): { items: Item[]; peak: number } {
  const framer = new LineFramer(maxLineBytes);
  const items: Item[] = [];
  let peak = 0;
  const sink: LineSink = {
    onLine(chunk, start, end) {
      items.push(chunk.toString('latin1', start, end));
      return true;
    },
    onLongLine() {
      items.push(LONG);
      return true;
    },
  };
  for (const step of steps) {
    if (step === null) framer.endPartialLine(sink);
    else framer.push(step, sink);
    peak = Math.max(peak, framer.bufferedBytes);
  }
  return { items, peak };
}

/** The obvious model: split the whole input at LF, strip one CR, judge the length. */
function model(maxLineBytes: number, input: Buffer): Item[] {
  const text = input.toString('latin1');
  const parts = text.split('\n');
  const rest = parts.pop()!;
  const items: Item[] = parts.map((part) => {
    const line = part.endsWith('\r') ? part.slice(0, -1) : part;
    return line.length > maxLineBytes ? LONG : line;
  });
  // A partial line is reported LONG as soon as it certainly passed the limit.
  const certainlyLong =
    rest.length > maxLineBytes + 1 || (rest.length === maxLineBytes + 1 && !rest.endsWith('\r'));
  if (certainlyLong) items.push(LONG);
  return items;
}

// Bytes biased towards the ones that matter to framing.
const byte = fc.oneof(
  fc.constantFrom(0x0a, 0x0d, 0x20, 0x41, 0x00, 0xff),
  fc.integer({ min: 0, max: 255 }),
);
const input = fc.array(byte, { maxLength: 200 }).map((bytes) => Buffer.from(bytes));

describe('LineFramer', () => {
  it('splits at LF and removes one CR before it', () => {
    assert.deepEqual(frame(100, [Buffer.from('a\r\nb\nc\r\r\n\r\n\nd')]).items, [
      'a',
      'b',
      'c\r',
      '',
      '',
    ]);
  });

  it('gives the same lines however the bytes are split (property)', () => {
    fc.assert(
      fc.property(
        input,
        fc.array(fc.nat(), { maxLength: 20 }),
        fc.integer({ min: 1, max: 16 }),
        (data, cuts, maxLineBytes) => {
          const expected = model(maxLineBytes, data);
          assert.deepEqual(frame(maxLineBytes, splitAt(data, cuts)).items, expected);
          assert.deepEqual(
            frame(
              maxLineBytes,
              [...data].map((b) => Buffer.of(b)),
            ).items,
            expected,
          );
        },
      ),
      { numRuns: 500 },
    );
  });

  it('never holds more than the limit + 1 bytes of a line (property)', () => {
    fc.assert(
      fc.property(input, fc.array(fc.nat(), { maxLength: 30 }), (data, cuts) => {
        const maxLineBytes = 8;
        assert.ok(frame(maxLineBytes, splitAt(data, cuts)).peak <= maxLineBytes + 1);
      }),
      { numRuns: 300 },
    );
  });

  it('reports an overlong line as soon as it passes the limit, before its LF', () => {
    const { items, peak } = frame(4, [Buffer.from('abcdef'), Buffer.alloc(100_000, 0x78)]);
    assert.deepEqual(items, [LONG]);
    assert.ok(peak <= 5);
  });

  it('waits for the next byte when limit + 1 bytes end in CR', () => {
    assert.deepEqual(frame(4, [Buffer.from('abcd\r')]).items, []);
    assert.deepEqual(frame(4, [Buffer.from('abcd\r'), Buffer.from('\n')]).items, ['abcd']);
    assert.deepEqual(frame(4, [Buffer.from('abcd\r'), Buffer.from('x\n')]).items, [LONG]);
  });

  it('stops framing the chunk when the sink says so', () => {
    const framer = new LineFramer(100);
    const seen: string[] = [];
    framer.push(Buffer.from('one\ntwo\nthree\n'), {
      onLine(chunk, start, end) {
        seen.push(chunk.toString('latin1', start, end));
        return seen.length < 2;
      },
      onLongLine: () => true,
    });
    assert.deepEqual(seen, ['one', 'two']);
  });

  describe('endPartialLine (protocol.md §9)', () => {
    function run(steps: (string | null)[], maxLineBytes = 100): Item[] {
      const pieces = steps.map((step) => (step === null ? null : Buffer.from(step, 'latin1')));
      return frame(maxLineBytes, pieces).items;
    }

    it('turns a partial line into a line', () => {
      assert.deepEqual(run(['HELO', null]), ['HELO']);
    });
    it('ignores the empty remainder that a late LF or CRLF ends', () => {
      assert.deepEqual(run(['HELO', null, '\n']), ['HELO']);
      assert.deepEqual(run(['HELO', null, '\r', '\n', '\n']), ['HELO', '']);
    });
    it('does nothing when no partial line is waiting', () => {
      assert.deepEqual(run([null, 'HELO\n', null, '\n']), ['HELO', '']);
    });
    it('keeps a non-empty continuation as a line of its own', () => {
      assert.deepEqual(run(['HE', null, 'LO\n']), ['HE', 'LO']);
    });
    it('answers an empty line after an overlong one that followed a silence', () => {
      assert.deepEqual(run(['HELO', null, '12345', '1234567\n', '\n'], 10), ['HELO', LONG, '']);
    });
    it('ends an overlong line that was being discarded', () => {
      assert.deepEqual(run(['0123456789', null, '\r\nHELO\n'], 4), [LONG, 'HELO']);
    });
  });
});
