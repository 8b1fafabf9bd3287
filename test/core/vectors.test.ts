import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import {
  loadVectors,
  oneByteAtATime,
  runOverCore,
  splitAt,
  type Vector,
} from '../helpers/vectors.js';

function expectOutcome(vector: Vector, outcome: ReturnType<typeof runOverCore>): void {
  assert.equal(outcome.replies, vector.replies, 'replies');
  assert.deepEqual(outcome.stored, vector.stored, 'stored payloads');
  if (vector.storedNames) assert.deepEqual(outcome.storedNames, vector.storedNames, 'names');
  assert.equal(outcome.closes, vector.closes, 'closes');
}

describe('protocol vectors over the pure core', () => {
  const vectors = loadVectors();

  it('has the lab transcript as its first vector', () => {
    assert.equal(vectors[0]?.input, 'HELO\r\nDATA\r\nHello world\r\nUSER\r\nQUIT\r\n');
    assert.equal(vectors[0]?.replies, '100 OK\r\n300 DRCV\r\n400 BCMD\r\n200 BYE\r\n');
  });

  for (const vector of vectors) {
    describe(vector.name, () => {
      it('all in one chunk', () => {
        expectOutcome(
          vector,
          runOverCore(vector, (segment) => [segment]),
        );
      });
      it('one byte at a time', () => {
        expectOutcome(vector, runOverCore(vector, oneByteAtATime));
      });
      it('at random split points', () => {
        fc.assert(
          fc.property(fc.array(fc.nat(), { maxLength: 12 }), (cuts) => {
            expectOutcome(
              vector,
              runOverCore(vector, (segment) => splitAt(segment, cuts)),
            );
          }),
          { numRuns: 60 },
        );
      });
    });
  }
});
