/**
 * When a group of appends is complete (SqliteStore, MemoryStore).
 *
 * A group opens with its first append and is looked at once per turn of the
 * event loop (setImmediate, after that turn's reads). Closing it at the
 * first look would gather only the reads of one turn, and libuv accepts one
 * connection per turn: whole sessions (connect, HELO, DATA, QUIT) then
 * arrive one per turn, and every one got its own transaction and fsync
 * (issue 16: mean batch 1.0 with 50 clients; docs/PERFORMANCE.md). So the
 * group stays open while each turn brings a new append, and closes at the
 * first turn that brings none, or at GATHER_MAX_RECORDS or GATHER_MAX_MS,
 * the bound on what gathering adds to a reply's latency. A lone client pays
 * one extra turn, not a timer: with an immediate pending the loop polls
 * without blocking.
 */
import { performance } from 'node:perf_hooks';

const GATHER_MAX_RECORDS = 1024;
const GATHER_MAX_MS = 4;

export class Gathering {
  readonly #onComplete: () => void;
  readonly #groupSize: () => number;
  #immediate: NodeJS.Immediate | undefined;
  /** Appends since the last look; `performance.now()` of the group's first. */
  #arrivedSinceLook = 0;
  #startedAt = 0;

  /**
   * @param onComplete takes the group (commits it); called from a turn's look only
   * @param groupSize how many appends the open group holds
   */
  constructor(onComplete: () => void, groupSize: () => number) {
    this.#onComplete = onComplete;
    this.#groupSize = groupSize;
  }

  /** One more append in the group; opens it when none is open. */
  added(): void {
    this.#arrivedSinceLook++;
    if (this.#immediate === undefined) {
      this.#startedAt = performance.now();
      this.#immediate = setImmediate(this.#look);
    }
  }

  /** The group was taken without waiting (close()): no look is pending any more. */
  cancel(): void {
    if (this.#immediate !== undefined) clearImmediate(this.#immediate);
    this.#immediate = undefined;
    this.#arrivedSinceLook = 0;
  }

  readonly #look = (): void => {
    const arrived = this.#arrivedSinceLook;
    this.#arrivedSinceLook = 0;
    if (
      arrived > 0 &&
      this.#groupSize() < GATHER_MAX_RECORDS &&
      performance.now() - this.#startedAt < GATHER_MAX_MS
    ) {
      this.#immediate = setImmediate(this.#look);
      return;
    }
    this.#immediate = undefined;
    this.#onComplete();
  };
}
