/**
 * The Spanish grade card translates the fixed phrases of a check's detail
 * (src/grade/messages.ts). Each phrase must come out whole, never half
 * translated by a shorter phrase inside it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { translateDetail } from '../../src/grade/messages.js';

describe('translateDetail', () => {
  it('leaves English alone', () => {
    assert.equal(translateDetail('a new client after them', 'en'), 'a new client after them');
  });

  it('translates a phrase that contains a shorter one whole', () => {
    assert.equal(translateDetail('a new client after them', 'es'), 'un cliente nuevo después');
    assert.equal(translateDetail('client 2 (closed)', 'es'), 'cliente 2 (cerrada)');
  });

  it('leaves no English word of a known phrase in a mixed detail', () => {
    const detail =
      'one client resets after HELO, one leaves mid-command; then a new client after them: 100 OK (still open)';
    const spanish = translateDetail(detail, 'es');
    assert.doesNotMatch(spanish, /\b(client|after|them|then|still)\b/, spanish);
  });
});
