/**
 * LineScanner must find the same lines however TCP cuts the bytes: checked
 * against a plain split of the whole input, at random cut points.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LineScanner } from '../../src/loadgen/line-scanner.js';
import { splitAt } from '../helpers/vectors.js';

interface SeenLine {
  readonly bytes: Buffer;
  readonly isTruncated: boolean;
}

function scan(
  pieces: readonly Buffer[],
  maxCarryBytes?: number,
): { lines: SeenLine[]; pending: number } {
  const scanner = new LineScanner(maxCarryBytes);
  const lines: SeenLine[] = [];
  for (const piece of pieces) {
    // Each read lands in a reused buffer: the sink must not keep a view into it.
    const reused = Buffer.from(piece);
    scanner.push(reused, {
      onLine(buffer, start, end, isTruncated) {
        lines.push({ bytes: Buffer.from(buffer.subarray(start, end)), isTruncated });
      },
    });
    reused.fill(0x3f);
  }
  return { lines, pending: scanner.pendingBytes };
}

/** The complete lines of `data`, each with its LF, and the bytes after the last LF. */
function expectedLines(data: Buffer): { lines: Buffer[]; pending: number } {
  const lines: Buffer[] = [];
  let start = 0;
  for (let lf = data.indexOf(0x0a); lf !== -1; lf = data.indexOf(0x0a, start)) {
    lines.push(data.subarray(start, lf + 1));
    start = lf + 1;
  }
  return { lines, pending: data.length - start };
}

const byte = fc.oneof(fc.constantFrom(0x0a, 0x0d, 0x31, 0x20), fc.integer({ min: 0, max: 255 }));
const input = fc.array(byte, { maxLength: 300 }).map((bytes) => Buffer.from(bytes));

describe('LineScanner', () => {
  it('finds every line, LF included, wherever the reads are cut', () => {
    fc.assert(
      fc.property(input, fc.array(fc.nat(), { maxLength: 30 }), (data, cuts) => {
        const { lines, pending } = scan(splitAt(data, cuts));
        const expected = expectedLines(data);
        assert.deepEqual(
          lines.map((line) => line.bytes),
          expected.lines,
        );
        assert.ok(lines.every((line) => !line.isTruncated));
        assert.equal(pending, expected.pending);
      }),
    );
  });

  it('keeps only the start of an over-long line cut across reads, and says so', () => {
    fc.assert(
      fc.property(
        input,
        fc.array(fc.nat(), { maxLength: 30 }),
        fc.integer({ min: 1, max: 20 }),
        (data, cuts, cap) => {
          const pieces = splitAt(data, cuts);
          const { lines } = scan(pieces, cap);
          const expected = expectedLines(data).lines;
          assert.equal(lines.length, expected.length);
          lines.forEach((line, index) => {
            const whole = expected[index]!;
            if (line.isTruncated) {
              assert.ok(whole.length > cap);
              assert.deepEqual(line.bytes, whole.subarray(0, cap));
            } else {
              assert.deepEqual(line.bytes, whole);
            }
          });
        },
      ),
    );
  });

  it('forgets an unfinished line on reset', () => {
    const { lines } = scan([Buffer.from('100 O')]);
    assert.deepEqual(lines, []);
    const scanner = new LineScanner();
    const seen: string[] = [];
    const sink = {
      onLine: (buffer: Buffer, start: number, end: number) =>
        seen.push(buffer.toString('latin1', start, end)),
    };
    scanner.push(Buffer.from('100 O'), sink);
    scanner.reset();
    assert.equal(scanner.pendingBytes, 0);
    scanner.push(Buffer.from('200 BYE\r\n'), sink);
    assert.deepEqual(seen, ['200 BYE\r\n']);
  });
});
