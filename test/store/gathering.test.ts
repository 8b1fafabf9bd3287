/**
 * src/store/gathering.ts: when a group of appends is complete. Driven turn
 * by turn on the real event loop, as the stores drive it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Gathering } from '../../src/store/gathering.js';

const nextTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** A store's queue: appends go in, a completed group takes them all. */
class Groups {
  queued = 0;
  readonly sizes: number[] = [];
  readonly gathering = new Gathering(
    () => {
      this.sizes.push(this.queued);
      this.queued = 0;
    },
    () => this.queued,
  );

  add(count = 1): void {
    for (let i = 0; i < count; i++) {
      this.queued++;
      this.gathering.added();
    }
  }
}

function busyFor(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    // The turn takes this long, as a busy server's turns do.
  }
}

describe('Gathering', () => {
  it('keeps a group open while every turn brings an append, and closes it at the first that brings none', async () => {
    // The first turns of a fresh process are slow (about 0.7 ms each): warm up.
    for (let turn = 0; turn < 50; turn++) await nextTurn();
    const groups = new Groups();
    const startedAt = performance.now();
    for (let turn = 0; turn < 5; turn++) {
      groups.add();
      await nextTurn();
    }
    // Five turns take well under 4 ms, unless the machine stalled this
    // process: then the time bound closed the group, as it should.
    if (performance.now() - startedAt < 3) {
      assert.deepEqual(groups.sizes, [], 'still open: every turn brought one');
    }
    await nextTurn();
    await nextTurn();
    if (groups.sizes.length === 1) assert.deepEqual(groups.sizes, [5]);
    else
      assert.equal(
        groups.sizes.reduce((sum, size) => sum + size, 0),
        5,
      );
  });

  it('closes a group of appends made in one turn at the next turn', async () => {
    const groups = new Groups();
    groups.add(50);
    await nextTurn();
    await nextTurn();
    assert.deepEqual(groups.sizes, [50]);
  });

  it('closes a group at 1,024 records even while appends keep coming', async () => {
    const groups = new Groups();
    for (let turn = 0; turn < 4; turn++) {
      groups.add(400);
      await nextTurn();
    }
    await nextTurn();
    await nextTurn();
    assert.equal(
      groups.sizes.reduce((sum, size) => sum + size, 0),
      1600,
    );
    assert.ok(groups.sizes[0]! >= 1024 && groups.sizes[0]! < 1024 + 400, `${groups.sizes}`);
  });

  it('closes a group 4 ms after its first append even while appends keep coming', async () => {
    const groups = new Groups();
    for (let turn = 0; turn < 10; turn++) {
      groups.add();
      busyFor(1);
      await nextTurn();
    }
    await nextTurn();
    await nextTurn();
    assert.equal(
      groups.sizes.reduce((sum, size) => sum + size, 0),
      10,
    );
    // 1 ms a turn: the first group closes within about 5 turns, not 10.
    assert.ok(groups.sizes.length >= 2, `one group of ${groups.sizes}`);
    assert.ok(groups.sizes[0]! <= 6, `${groups.sizes}`);
  });

  it('cancel() leaves no look pending', async () => {
    const groups = new Groups();
    groups.add(3);
    groups.gathering.cancel();
    await nextTurn();
    await nextTurn();
    assert.deepEqual(groups.sizes, []);
    // And the next append opens a new group.
    groups.add();
    await nextTurn();
    await nextTurn();
    assert.deepEqual(groups.sizes, [4]);
  });
});
