/**
 * The server's live connections: one added as each session starts, removed
 * as it closes, all of them walked at shutdown.
 *
 * A plain array, not a `Set`. With a `Set` that saw one add and one delete
 * per session, V8's minor collections kept every closed connection (its
 * session, framer, timers and queued replies) alive and moved it to the old
 * generation, about 1.4 KB per session, to be freed only by a full
 * collection: W4 spent 8 µs of garbage collection per session, against
 * 3.5 µs with this list (docs/PERFORMANCE.md, "W4: closed connections
 * outlived their sessions"). Each item keeps its own index, so removal
 * moves the last item into the gap and takes constant time.
 */

/** An item that knows where a `LiveList` holds it. */
export interface Listed {
  /** Its index in the list that holds it; -1 while in none. */
  listIndex: number;
}

export class LiveList<T extends Listed> {
  readonly #items: T[] = [];

  get size(): number {
    return this.#items.length;
  }

  /** Adds `item`, which must be in no list. */
  add(item: T): void {
    item.listIndex = this.#items.length;
    this.#items.push(item);
  }

  /** Removes `item`; false if this list did not hold it. */
  delete(item: T): boolean {
    const index = item.listIndex;
    if (this.#items[index] !== item) return false;
    const last = this.#items.pop()!;
    if (last !== item) {
      this.#items[index] = last;
      last.listIndex = index;
    }
    item.listIndex = -1;
    return true;
  }

  /** A copy, in no particular order: items may leave the list while the copy is walked. */
  items(): T[] {
    return [...this.#items];
  }
}
