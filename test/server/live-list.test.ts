/**
 * The server's list of live connections (src/server/live-list.ts) holds
 * exactly what a Set would, whatever the order of adds and deletes.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { LiveList, type Listed } from '../../src/server/live-list.js';

class Item implements Listed {
  listIndex = -1;
  constructor(readonly name: number) {}
}

describe('LiveList', () => {
  it('holds what a Set would after any sequence of adds and deletes', () => {
    const step = fc.record({ add: fc.boolean(), which: fc.nat({ max: 19 }) });
    fc.assert(
      fc.property(fc.array(step, { maxLength: 200 }), (steps) => {
        const items = Array.from({ length: 20 }, (_, name) => new Item(name));
        const list = new LiveList<Item>();
        const model = new Set<Item>();
        for (const { add, which } of steps) {
          const item = items[which]!;
          if (add) {
            if (model.has(item)) continue; // an item is added once, as a session starts once
            list.add(item);
            model.add(item);
          } else {
            assert.equal(list.delete(item), model.delete(item));
          }
          assert.equal(list.size, model.size);
        }
        const names = (from: Iterable<Item>): number[] => [...from].map((item) => item.name).sort();
        assert.deepEqual(names(list.items()), names(model));
        for (const item of items) assert.equal(item.listIndex !== -1, model.has(item));
      }),
    );
  });

  it('can be walked while what it visits leaves it', () => {
    const list = new LiveList<Item>();
    const items = [1, 2, 3, 4].map((name) => new Item(name));
    for (const item of items) list.add(item);
    const visited: number[] = [];
    for (const item of list.items()) {
      visited.push(item.name);
      list.delete(item);
    }
    assert.deepEqual(visited.sort(), [1, 2, 3, 4]);
    assert.equal(list.size, 0);
  });

  it('says false for an item it does not hold, and leaves the others alone', () => {
    const list = new LiveList<Item>();
    const held = new Item(1);
    const other = new Item(2);
    list.add(held);
    assert.equal(list.delete(other), false);
    other.listIndex = 0; // claims the slot another item holds
    assert.equal(list.delete(other), false);
    assert.deepEqual(list.items(), [held]);
  });
});
