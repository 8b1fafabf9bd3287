/**
 * Sockets and connections the server holds for a while: a session from its
 * start to its close, a socket while its PROXY header is read or its TLS
 * handshake runs, a sequential client until its turn. Added, removed a
 * moment later, walked at shutdown, oldest first.
 *
 * A doubly linked list, not a `Set` or `Map`. With the live connections in
 * a `Set` that saw one add and one delete per session, V8's minor
 * collections kept about 60 % of closed connections (each with its
 * session, framer, timers and replies) alive and moved them to the old
 * generation, to be freed only by a full collection: W4 spent 6.7 µs of
 * garbage collection per session, 3 µs with this list; a `Set` and a `Map`
 * keyed by socket on the PROXY-header path did the same (docs/PERFORMANCE.md,
 * "W4: closed connections outlived their sessions"). `add()` returns the
 * entry, which is what `delete()` takes: both in constant time.
 */

/** What `add()` returns: the handle `delete()` takes. */
export interface ListEntry<T> {
  readonly item: T;
}

class Entry<T> implements ListEntry<T> {
  previous: Entry<T> | null = null;
  next: Entry<T> | null = null;
  /** The list holding it, or null once deleted. */
  list: LiveList<T> | null;

  constructor(
    readonly item: T,
    list: LiveList<T>,
  ) {
    this.list = list;
  }
}

export class LiveList<T> {
  #oldest: Entry<T> | null = null;
  #newest: Entry<T> | null = null;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  add(item: T): ListEntry<T> {
    const entry = new Entry(item, this);
    entry.previous = this.#newest;
    if (this.#newest === null) this.#oldest = entry;
    else this.#newest.next = entry;
    this.#newest = entry;
    this.#size++;
    return entry;
  }

  /** Removes the entry `add()` returned; false if it is not in this list (any more). */
  delete(handle: ListEntry<T>): boolean {
    const entry = handle as Entry<T>;
    if (entry.list !== this) return false;
    if (entry.previous === null) this.#oldest = entry.next;
    else entry.previous.next = entry.next;
    if (entry.next === null) this.#newest = entry.previous;
    else entry.next.previous = entry.previous;
    entry.previous = entry.next = null;
    entry.list = null;
    this.#size--;
    return true;
  }

  /** The item added first of those still here. */
  oldest(): T | undefined {
    return this.#oldest?.item;
  }

  /** The items, oldest first, as a copy: they may leave the list while it is walked. */
  items(): T[] {
    const items: T[] = [];
    for (let entry = this.#oldest; entry !== null; entry = entry.next) items.push(entry.item);
    return items;
  }
}
