/** How connections and the --requests budget are divided among threads. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { defaultThreadCount, splitByWeight, splitEvenly } from '../../src/loadgen/thread-shares.js';

describe('thread shares', () => {
  it('splitEvenly: adds up, and no two shares differ by more than one', () => {
    fc.assert(
      fc.property(fc.nat(100_000), fc.integer({ min: 1, max: 64 }), (total, parts) => {
        const shares = splitEvenly(total, parts);
        assert.equal(shares.length, parts);
        assert.equal(
          shares.reduce((a, b) => a + b, 0),
          total,
        );
        assert.ok(Math.max(...shares) - Math.min(...shares) <= 1);
      }),
    );
  });

  it('splitByWeight: adds up exactly, each share within one of its exact proportion', () => {
    fc.assert(
      fc.property(
        fc.nat(1_000_000),
        fc.array(fc.nat(1000), { minLength: 1, maxLength: 16 }),
        (total, weights) => {
          const shares = splitByWeight(total, weights);
          assert.equal(
            shares.reduce((a, b) => a + b, 0),
            total,
          );
          const sum = weights.reduce((a, b) => a + b, 0);
          if (sum === 0) return;
          shares.forEach((share, index) => {
            assert.ok(Math.abs(share - (total * weights[index]!) / sum) < 1);
          });
        },
      ),
    );
  });

  it('defaultThreadCount: half the CPUs on loopback, all elsewhere, one per connection at most', () => {
    assert.equal(defaultThreadCount('127.0.0.1', 50, 8), 4);
    assert.equal(defaultThreadCount('localhost', 50, 2), 1);
    assert.equal(defaultThreadCount('::1', 50, 1), 1);
    assert.equal(defaultThreadCount('10.0.0.7', 50, 8), 8);
    assert.equal(defaultThreadCount('10.0.0.7', 3, 8), 3);
  });
});
