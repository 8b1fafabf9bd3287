/** The backslash escapes of --request, --expect and scripts. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { InvalidOptionError } from '../../src/errors.js';
import { formatEscapes, parseEscapes } from '../../src/loadgen/escapes.js';

describe('parseEscapes', () => {
  it('interprets \\r \\n \\t \\\\ and \\xHH', () => {
    assert.deepEqual(parseEscapes('PING\\r\\n'), Buffer.from('PING\r\n'));
    assert.deepEqual(parseEscapes('a\\tb\\\\c'), Buffer.from('a\tb\\c'));
    assert.deepEqual(parseEscapes('\\x00\\xff\\x7F'), Buffer.from([0x00, 0xff, 0x7f]));
    assert.deepEqual(parseEscapes('\\\\n'), Buffer.from('\\n'), 'an escaped backslash, then n');
  });

  it('keeps other text as UTF-8', () => {
    assert.deepEqual(parseEscapes('héllo'), Buffer.from('héllo', 'utf8'));
    assert.deepEqual(parseEscapes(''), Buffer.alloc(0));
  });

  it('refuses an unknown or cut escape rather than sending it', () => {
    for (const text of ['\\q', 'PING\\', '\\x4', '\\xZZ', '\\0']) {
      assert.throws(() => parseEscapes(text), InvalidOptionError, text);
    }
  });

  it('is the inverse of formatEscapes for any bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
        const text = formatEscapes(bytes);
        assert.match(text, /^[\x20-\x7e]*$/, 'printable ASCII only');
        assert.deepEqual(parseEscapes(text), Buffer.from(bytes));
      }),
    );
  });

  it('leaves any text without a backslash as its UTF-8 bytes', () => {
    fc.assert(
      fc.property(
        fc.string({ unit: 'grapheme', maxLength: 40 }).filter((s) => !s.includes('\\')),
        (text) => {
          assert.deepEqual(parseEscapes(text), Buffer.from(text, 'utf8'));
        },
      ),
    );
  });
});
