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
 * open across turns by the same rule (gathering.ts: settling each session's
 * payload on its own cost whole sessions more CPU than SQLite's commits
 * did, docs/PERFORMANCE.md); the payload is copied.
 */
import { performance } from 'node:perf_hooks';
import { StoreError } from '../errors.js';
import { Gathering } from './gathering.js';
import { checkReadRange } from './store.js';
import type { CommitInfo, NewRecord, Store, StoredRecord } from './store.js';

export interface MemoryStoreOptions {
  /** Called after every group of appends is settled, as SqliteStore's `onCommit`. */
  readonly onCommit?: (info: CommitInfo) => void;
}

interface PendingAppend {
  readonly record: StoredRecord;
  readonly resolve: (id: number) => void;
}

export class MemoryStore implements Store {
  /** Sorted by id, since ids are assigned in append order. */
  readonly #records: StoredRecord[] = [];
  readonly #onCommit: ((info: CommitInfo) => void) | undefined;
  #pending: PendingAppend[] = [];
  readonly #gathering = new Gathering(
    () => this.#flush(),
    () => this.#pending.length,
  );
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
      this.#gathering.added();
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
    this.#gathering.cancel();
    this.#flush();
  }

  #flush(): void {
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
