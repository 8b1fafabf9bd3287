import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { ELLIPSIS, truncateUtf8 } from '../../src/core/truncate-utf8.js';

/** Well-formed text: any code point, astral ones (surrogate pairs) included. */
const text = fc.string({ unit: 'binary', maxLength: 600 });
/** Any UTF-16 units, lone surrogates included: must not throw or overrun. */
const anyUnits = fc.string({
  unit: fc.integer({ min: 0, max: 0xffff }).map((unit) => String.fromCharCode(unit)),
  maxLength: 600,
});
const budget = fc.integer({ min: 3, max: 1100 });

describe('truncateUtf8', () => {
  it('cuts at the budget, ellipsis included, without splitting a character', () => {
    // 1021 bytes of budget before the ellipsis: 510 two-byte characters fit, not 511.
    const cut = truncateUtf8('é'.repeat(600), 1024);
    assert.equal(cut, `${'é'.repeat(510)}${ELLIPSIS}`);
    assert.equal(Buffer.byteLength(cut), 1023);
    // A surrogate pair (4 bytes) is kept whole or dropped whole.
    assert.equal(truncateUtf8('ab😀cdef', 8), `ab${ELLIPSIS}`);
    assert.equal(truncateUtf8('ab😀cdef', 9), `ab😀${ELLIPSIS}`);
  });

  it('leaves text that fits unchanged (property)', () => {
    fc.assert(
      fc.property(anyUnits, budget, (input, maxBytes) => {
        fc.pre(Buffer.byteLength(input) <= maxBytes);
        assert.equal(truncateUtf8(input, maxBytes), input);
      }),
    );
  });

  it('never exceeds the budget and stays a prefix plus …, in valid UTF-8 (property)', () => {
    fc.assert(
      fc.property(text, budget, (input, maxBytes) => {
        const cut = truncateUtf8(input, maxBytes);
        const size = Buffer.byteLength(cut);
        assert.ok(size <= maxBytes, `${size} > ${maxBytes}`);
        assert.equal(Buffer.from(cut, 'utf8').toString('utf8'), cut, 'valid UTF-8');
        if (cut !== input) {
          assert.ok(cut.endsWith(ELLIPSIS));
          assert.ok(input.startsWith(cut.slice(0, -ELLIPSIS.length)));
          // As long as it can be: the next character would not have fitted.
          const next = [...input.slice(cut.length - ELLIPSIS.length)][0] ?? '';
          assert.ok(size + Buffer.byteLength(next) > maxBytes);
        }
      }),
    );
  });

  it('handles lone surrogates without throwing or overrunning (property)', () => {
    fc.assert(
      fc.property(anyUnits, budget, (input, maxBytes) => {
        const cut = truncateUtf8(input, maxBytes);
        assert.ok(Buffer.byteLength(cut) <= maxBytes);
        assert.ok(cut === input || input.startsWith(cut.slice(0, -ELLIPSIS.length)));
      }),
    );
  });
});
