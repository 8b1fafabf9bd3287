/**
 * The in-memory store (`--store memory:`): for tests, demos and benchmarks
 * that must not touch the disk. Nothing is durable: the records die with the
 * process, so here `300 DRCV` promises only "kept by this process"
 * (docs/PROTOCOL.md §5 asks for durability only of a durable store).
 *
 * It keeps the SqliteStore's observable behaviour so that code tested
 * against it behaves the same on the default store: ids from 1, increasing;
 * records appended during one turn of the event loop settle together on a
 * later turn (a "group commit" with nothing to sync), and the group stays
 * open across turns for as long as each turn brings a new append, within
 * the same bounds as SqliteStore's; the payload is copied.
 */
import { performance } from 'node:perf_hooks';
import { StoreError } from '../errors.js';
import { checkReadRange } from './store.js';
import type { CommitInfo, NewRecord, Store, StoredRecord } from './store.js';

export interface MemoryStoreOptions {
  /** Called after every group of appends is settled, as SqliteStore's `onCommit`. */
  readonly onCommit?: (info: CommitInfo) => void;
}

/**
 * SqliteStore's bounds on a group (src/store/sqlite-store.ts): at most this
 * many records, or this long since the first of them was appended.
 */
const GATHER_MAX_RECORDS = 1024;
const GATHER_MAX_MS = 4;

interface PendingAppend {
  readonly record: StoredRecord;
  readonly resolve: (id: number) => void;
}

export class MemoryStore implements Store {
  /** Sorted by id, since ids are assigned in append order. */
  readonly #records: StoredRecord[] = [];
  readonly #onCommit: ((info: CommitInfo) => void) | undefined;
  #pending: PendingAppend[] = [];
  #flushImmediate: NodeJS.Immediate | undefined;
  #arrivedSinceCheck = 0;
  #gatherStartedAt = 0;
  #nextId = 1;
  #isOpen = true;

  constructor(options: MemoryStoreOptions = {}) {
    this.#onCommit = options.onCommit;
  }

  get isOpen(): boolean {
    return this.#isOpen;
  }

  append(record: NewRecord): Promise<number> {
    if (!this.#isOpen) return Promise.reject(new StoreError('store memory: is closed'));
    // Copied: the caller may reuse its buffer once append() returns.
    const stored: StoredRecord = {
      id: this.#nextId++,
      receivedAt: record.receivedAt,
      session: record.session,
      peer: record.peer,
      name: record.name,
      payload: Buffer.from(record.payload),
      clientCert: record.clientCert ?? null,
      proxy: record.proxy ?? null,
    };
    return new Promise<number>((resolve) => {
      this.#pending.push({ record: stored, resolve });
      this.#arrivedSinceCheck++;
      if (this.#flushImmediate === undefined) {
        this.#gatherStartedAt = performance.now();
        this.#flushImmediate = setImmediate(this.#onGatherTurn);
      }
    });
  }

  async read(afterId: number, limit: number): Promise<StoredRecord[]> {
    checkReadRange(afterId, limit);
    if (!this.#isOpen) throw new StoreError('store memory: is closed');
    // Ids are 1..n at indexes 0..n-1, so the first id above afterId is at
    // index afterId; copies, so that readers cannot alter the stored bytes.
    return this.#records
      .slice(afterId, afterId + limit)
      .map((record) => ({ ...record, payload: Buffer.from(record.payload) }));
  }

  async close(): Promise<void> {
    if (!this.#isOpen) return;
    this.#isOpen = false;
    if (this.#flushImmediate) clearImmediate(this.#flushImmediate);
    this.#flush();
  }

  /**
   * Once per turn while a group is open. Settling every turn's appends on
   * their own cost whole sessions (which arrive one per turn, as libuv
   * accepts one connection per turn) more CPU than SQLite's commits did:
   * a mean group of 1.0 under 50 clients, each settled, answered and closed
   * alone (docs/PERFORMANCE.md). A lone client pays one extra turn, no timer.
   */
  readonly #onGatherTurn = (): void => {
    const arrived = this.#arrivedSinceCheck;
    this.#arrivedSinceCheck = 0;
    if (
      arrived > 0 &&
      this.#pending.length < GATHER_MAX_RECORDS &&
      performance.now() - this.#gatherStartedAt < GATHER_MAX_MS
    ) {
      this.#flushImmediate = setImmediate(this.#onGatherTurn);
      return;
    }
    this.#flush();
  };

  #flush(): void {
    this.#flushImmediate = undefined;
    this.#arrivedSinceCheck = 0;
    const batch = this.#pending;
    if (batch.length === 0) return;
    this.#pending = [];
    const started = performance.now();
    for (const { record } of batch) this.#records.push(record);
    const durationMs = performance.now() - started;
    for (const { record, resolve } of batch) resolve(record.id);
    this.#onCommit?.({ records: batch.length, durationMs, ok: true });
  }
}
