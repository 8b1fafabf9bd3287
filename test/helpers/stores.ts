/**
 * Store doubles for driver tests: a real MemoryStore underneath, with the
 * commit held back or failed on demand, so that a test can observe what the
 * server does while a commit is pending or after it failed.
 */
import { StoreError } from '../../src/errors.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { NewRecord, Store, StoredRecord } from '../../src/store/store.js';

export class ControlledStore implements Store {
  readonly inner = new MemoryStore();
  /** While true, appends wait until `release()`. */
  isHolding = false;
  /** While true, appends reject (the server must answer 500 FAIL). */
  isFailing = false;
  #held: (() => void)[] = [];

  append(record: NewRecord): Promise<number> {
    if (this.isFailing) return Promise.reject(new StoreError('disk on fire (test)'));
    if (!this.isHolding) return this.inner.append(record);
    return new Promise<void>((resolve) => this.#held.push(resolve)).then(() =>
      this.inner.append(record),
    );
  }

  /** How many appends are waiting. */
  get heldCount(): number {
    return this.#held.length;
  }

  release(): void {
    this.isHolding = false;
    const held = this.#held;
    this.#held = [];
    for (const resolve of held) resolve();
  }

  read(afterId: number, limit: number): Promise<StoredRecord[]> {
    return this.inner.read(afterId, limit);
  }

  close(): Promise<void> {
    this.release();
    return this.inner.close();
  }
}
