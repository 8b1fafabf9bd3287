/**
 * A `Store` whose records are stored by another process: the fork-mode
 * parent or the cluster primary, which owns the real store.
 *
 * Why not let every process open the SQLite file itself? SQLite allows one
 * writer at a time; with many processes each committing its own groups,
 * they queue on the file's lock, and better-sqlite3 waits for it
 * synchronously, stalling every client of the waiting process. One owner
 * keeps group commit working across all processes (the appends of many
 * children share one transaction and one fsync) and a client never sees
 * `500 FAIL` because of a lock.
 *
 * Appends travel in batches (append-batch.ts: flat, whatever their number),
 * and at most `MAX_BATCHES_IN_FLIGHT` wait for the owner at a time: the
 * owner holds only what it is about to commit, and records queue here, in
 * the process whose connections produce them and can stop reading.
 *
 * Bounded (docs/RELIABILITY.md): the owner answers at its own pace, and
 * without a bound a worker with many pipelining clients would pile up
 * records, their IPC copies and the owner's copies in three processes. So
 * past `APPENDS_SOFT_LIMIT` unanswered appends (or their bytes) the store
 * says it is backed up: connections stop reading, and one that has read
 * meanwhile holds the bytes unparsed (connection.ts) until `whenReady`
 * wakes it, which happens only under the limit. So at most the soft limit
 * plus one read's requests are parsed and unanswered at a time; the hard
 * limit (`500 FAIL` at once) is a second line that pacing does not reach.
 */
import { StoreError } from '../../errors.js';
import type { NewRecord, Store, StoredRecord } from '../../store/store.js';
import { encodeAppendBatch, type AppendBatch, type AppendResults } from './append-batch.js';
import type { IpcPeer } from './messages.js';
import { IpcRequester, rpcChannel } from './rpc.js';

/**
 * Child -> parent: store these records; the answer is each record's id, or
 * why it was not stored, in order.
 */
export const APPEND_RPC = rpcChannel<AppendBatch, AppendResults>('helo:append', 'helo:appended');

/**
 * Batches sent and not answered yet: two, so the owner has the next batch
 * at hand when it commits one, and holds no more than that per process.
 */
export const MAX_BATCHES_IN_FLIGHT = 2;
/** Records and payload bytes per batch at most (a single bigger record travels alone). */
export const BATCH_LIMIT = { records: 4_096, bytes: 4 << 20 };

/** Unanswered appends (records, payload bytes) beyond which `isBackedUp` is true. */
const APPENDS_SOFT_LIMIT = { records: 4_096, bytes: 16 << 20 };
/** Unanswered appends beyond which a new one fails at once. */
export const APPENDS_HARD_LIMIT = { records: 65_536, bytes: 256 << 20 };

const OWNER_GONE = 'the server process that owns the store is gone';

interface Waiter {
  readonly resolve: (id: number) => void;
  readonly reject: (error: unknown) => void;
  /** The record's payload length, counted in `#unansweredBytes` until answered. */
  readonly bytes: number;
}

export class RemoteStore implements Store {
  /** One request per batch, at most `MAX_BATCHES_IN_FLIGHT` unanswered. */
  readonly #appends: IpcRequester<AppendBatch, AppendResults>;
  /** Records not sent yet, oldest first, and who waits for each. */
  #unsent: NewRecord[] = [];
  #unsentWaiters: Waiter[] = [];
  #isSendScheduled = false;
  /** Paused connections' wake-ups, oldest first (`whenReady`). */
  #readyWaiters: (() => void)[] = [];
  #isWakeScheduled = false;
  /** A wake-up is running: its connection may read although others still wait. */
  #isWaking = false;
  #isClosed = false;
  /** Appends not answered yet (unsent and in flight), and their payload bytes. */
  #unanswered = 0;
  #unansweredBytes = 0;

  constructor(owner: IpcPeer) {
    this.#appends = new IpcRequester(owner, APPEND_RPC, {
      maxOutstanding: MAX_BATCHES_IN_FLIGHT,
      errors: {
        gone: () => new StoreError(OWNER_GONE),
        answer: (message) => new StoreError(message),
      },
      onGone: () => this.failAll(OWNER_GONE),
    });
  }

  /**
   * True while so many appends wait for an answer that connections should
   * stop reading, and while paused connections wait for their turn to read
   * again (except for the one being woken).
   */
  get isBackedUp(): boolean {
    return this.#isOverSoftLimit() || (this.#readyWaiters.length > 0 && !this.#isWaking);
  }

  /**
   * Wakes paused connections, oldest first, while the store is under its
   * soft limit; a connection serves the read it held back during its
   * wake-up (connection.ts), so the count is exact. Resuming them all at
   * once would let each parse a whole socket read before any of them looks
   * at the limit again: connections × 64 KiB of requests in flight, the
   * overshoot this pacing exists to avoid.
   */
  whenReady(wake: () => void): void {
    this.#readyWaiters.push(wake);
    this.#scheduleWake();
  }

  #isOverSoftLimit(): boolean {
    return (
      this.#unanswered >= APPENDS_SOFT_LIMIT.records ||
      this.#unansweredBytes >= APPENDS_SOFT_LIMIT.bytes
    );
  }

  #scheduleWake(): void {
    if (this.#isWakeScheduled || this.#readyWaiters.length === 0) return;
    this.#isWakeScheduled = true;
    setImmediate(this.#wakeOne);
  }

  readonly #wakeOne = (): void => {
    this.#isWakeScheduled = false;
    // Over the limit, the next answer schedules the next wake.
    if (this.#isOverSoftLimit() && !this.#isClosed) return;
    // Those woken here and paused again wait at the end of the line.
    let turns = this.#readyWaiters.length;
    while (turns-- > 0 && (!this.#isOverSoftLimit() || this.#isClosed)) {
      const wake = this.#readyWaiters.shift()!;
      this.#isWaking = true;
      try {
        wake();
      } finally {
        this.#isWaking = false;
      }
    }
    // Connections that were only paused (nothing held) read on a later turn.
    this.#scheduleWake();
  };

  append(record: NewRecord): Promise<number> {
    if (this.#isClosed) return Promise.reject(new StoreError('the store is closed'));
    if (
      this.#unanswered >= APPENDS_HARD_LIMIT.records ||
      this.#unansweredBytes + record.payload.length > APPENDS_HARD_LIMIT.bytes
    ) {
      return Promise.reject(new StoreError('too many appends wait for the store; try again'));
    }
    const bytes = record.payload.length;
    this.#unanswered++;
    this.#unansweredBytes += bytes;
    return new Promise<number>((resolve, reject) => {
      // The appends of this turn go together, once it is over.
      if (!this.#isSendScheduled) {
        this.#isSendScheduled = true;
        setImmediate(this.#sendBatches);
      }
      this.#unsent.push(record);
      this.#unsentWaiters.push({ resolve, reject, bytes });
    });
  }

  async read(): Promise<StoredRecord[]> {
    throw new StoreError('records are read where the store is, not through a server process');
  }

  /** Waits for the answers to every append sent so far. */
  async close(): Promise<void> {
    this.#isClosed = true;
    while (this.#unsent.length > 0) {
      this.#sendBatches();
      await this.#appends.idle();
    }
    this.#appends.close();
  }

  /** The owner is gone (its process died): nothing in flight can be acknowledged. */
  failAll(reason: string): void {
    const error = new StoreError(reason);
    this.#isClosed = true;
    this.#appends.rejectAll(error);
    const unsent = this.#unsentWaiters;
    this.#unsent = [];
    this.#unsentWaiters = [];
    for (const waiter of unsent) this.#settle(waiter, { error });
    // Appends fail at once from now on: nothing to pace.
    for (const wake of this.#readyWaiters.splice(0)) wake();
  }

  #settle(waiter: Waiter, outcome: { readonly id: number } | { readonly error: unknown }): void {
    this.#unanswered--;
    this.#unansweredBytes -= waiter.bytes;
    if ('id' in outcome) waiter.resolve(outcome.id);
    else waiter.reject(outcome.error);
  }

  /** Sends what waits, batch by batch, while fewer than `MAX_BATCHES_IN_FLIGHT` are unanswered. */
  readonly #sendBatches = (): void => {
    this.#isSendScheduled = false;
    // Each turn takes at least one record, and a closed channel fails them all.
    while (this.#unsent.length > 0 && this.#appends.outstanding < MAX_BATCHES_IN_FLIGHT) {
      this.#sendBatch();
    }
  };

  #sendBatch(): void {
    let count = 0;
    let bytes = 0;
    while (count < this.#unsent.length && count < BATCH_LIMIT.records) {
      const size = this.#unsent[count]!.payload.length;
      if (count > 0 && bytes + size > BATCH_LIMIT.bytes) break;
      bytes += size;
      count++;
    }
    const records = this.#unsent.splice(0, count);
    const waiters = this.#unsentWaiters.splice(0, count);
    this.#appends.request(encodeAppendBatch(records)).then(
      ({ ids, errors }) => {
        let failed = 0;
        waiters.forEach((waiter, i) => {
          const id = ids[i];
          if (id === undefined) this.#settle(waiter, { error: new StoreError('no answer') });
          else if (!Number.isNaN(id)) this.#settle(waiter, { id });
          else this.#settle(waiter, { error: new StoreError(errors[failed++] ?? 'not stored') });
        });
        // A batch slot is free: what queued meanwhile goes now.
        this.#sendBatches();
        this.#scheduleWake();
      },
      (error: unknown) => waiters.forEach((waiter) => this.#settle(waiter, { error })),
    );
  }
}
