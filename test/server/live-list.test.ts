/**
 * The lists of sockets and connections the server holds
 * (src/server/live-list.ts) keep what an insertion-ordered Set would,
 * whatever the order of adds and deletes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LiveList, type ListEntry } from '../../src/server/live-list.js';

describe('LiveList', () => {
  it('holds what a Set would, in the same order, after any adds and deletes', () => {
    const step = fc.record({ add: fc.boolean(), which: fc.nat({ max: 19 }) });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 200 }), (steps) => {
        const list = new LiveList<number>();
        const model = new Set<number>();
        const entries = new Map<number, ListEntry<number>>();
        for (const { add, which } of steps) {
          if (add) {
            if (model.has(which)) continue; // added once, as a session starts once
            entries.set(which, list.add(which));
            model.add(which);
          } else {
            const entry = entries.get(which);
            assert.equal(entry === undefined ? false : list.delete(entry), model.delete(which));
          }
          assert.equal(list.size, model.size);
          assert.equal(list.oldest(), model.values().next().value);
        }
        assert.deepEqual(list.items(), [...model]);
      }),
    );
  });

  it('deletes an entry once, and no entry of another list', () => {
    const list = new LiveList<string>();
    const other = new LiveList<string>();
    const a = list.add('a');
    const b = other.add('b');
    assert.equal(list.delete(b), false);
    assert.equal(list.delete(a), true);
    assert.equal(list.delete(a), false);
    assert.equal(list.size, 0);
    assert.deepEqual(other.items(), ['b']);
  });

  it('can be walked while what it visits leaves it', () => {
    const list = new LiveList<number>();
    const entries = [1, 2, 3, 4].map((item) => list.add(item));
    const visited = list.items().map((item) => {
      list.delete(entries[item - 1]!);
      return item;
    });
    assert.deepEqual(visited, [1, 2, 3, 4]);
    assert.equal(list.size, 0);
    assert.equal(list.oldest(), undefined);
  });
});
