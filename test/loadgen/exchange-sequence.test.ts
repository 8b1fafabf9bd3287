/** The precomputed request bytes: any batch is the requests it covers, in order. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ExchangeSequence } from '../../src/loadgen/exchange-sequence.js';
import type { Exchange, LoadPlan } from '../../src/loadgen/load-plan.js';
import { exactReply } from '../../src/loadgen/reply-expectation.js';

function exchange(name: string): Exchange {
  return { request: Buffer.from(`${name}\r\n`), reply: exactReply(Buffer.from(`ok ${name}\r\n`)) };
}

const plans = fc.record({
  kind: fc.constantFrom<'steady' | 'session'>('steady', 'session'),
  setup: fc.array(fc.stringMatching(/^S[a-z]{0,3}$/).map(exchange), { maxLength: 3 }),
  body: fc.array(fc.stringMatching(/^B[a-z]{0,5}$/).map(exchange), { minLength: 1, maxLength: 4 }),
  description: fc.constant('test'),
}) as fc.Arbitrary<LoadPlan>;

describe('ExchangeSequence', () => {
  it('gives, for any batch, the requests of that run of exchanges', () => {
    fc.assert(
      fc.property(
        plans,
        fc.integer({ min: 1, max: 40 }),
        fc.nat(200),
        fc.nat(),
        (plan, maxBatch, start, rawCount) => {
          const sequence = new ExchangeSequence(plan, maxBatch);
          const all = [...plan.setup, ...plan.body];
          const at = (index: number): Exchange =>
            index < all.length
              ? all[index]!
              : plan.body[(index - plan.setup.length) % plan.body.length]!;
          const length = plan.kind === 'session' ? all.length : Infinity;
          assert.equal(sequence.length, length);
          const first = plan.kind === 'session' ? start % all.length : start;
          const count = 1 + (rawCount % Math.min(maxBatch, length - first));
          const expected = Buffer.concat(
            Array.from({ length: count }, (_, k) => at(first + k).request),
          );
          assert.deepEqual(sequence.requestBytes(first, count), expected);
          assert.deepEqual(sequence.expectation(first), at(first).reply);
          assert.equal(sequence.isSetup(first), first < plan.setup.length);
        },
      ),
    );
  });

  it('refuses a batch longer than its maximum or past the end of a session', () => {
    const plan: LoadPlan = {
      kind: 'session',
      setup: [],
      body: [exchange('A'), exchange('B')],
      description: 't',
    };
    const sequence = new ExchangeSequence(plan, 4);
    assert.throws(() => sequence.requestBytes(1, 2), RangeError);
    assert.throws(() => sequence.requestBytes(0, 5), RangeError);
  });

  it('builds batches on demand when precomputing would take too much memory', () => {
    const big: Exchange = {
      request: Buffer.alloc(1024 * 1024, 'x'),
      reply: exactReply(Buffer.from('ok\n')),
    };
    big.request.write('\n', big.request.length - 1);
    const plan: LoadPlan = { kind: 'steady', setup: [], body: [big], description: 't' };
    const sequence = new ExchangeSequence(plan, 16);
    assert.equal(sequence.requestBytes(5, 16).length, 16 * 1024 * 1024);
  });
});
