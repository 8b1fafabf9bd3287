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
 * Appends made during one event-loop turn travel in one message.
 *
 * Bounded (docs/RELIABILITY.md): the owner answers at its own pace, and
 * without a bound a worker with many pipelining clients would pile up
 * records, their IPC copies and the owner's copies in three processes. So
 * past `APPENDS_SOFT_LIMIT` unanswered appends (or their bytes) the store
 * says it is backed up, and connections waiting on their own commits stop
 * reading (connection.ts); past `APPENDS_HARD_LIMIT` an append fails at once
 * (`500 FAIL`), which only a flood of tiny payloads on many connections can
 * reach, since each paused connection adds at most what it had already read.
 */
import { StoreError } from '../../errors.js';
import type { NewRecord, Store, StoredRecord } from '../../store/store.js';
import type { IpcPeer } from './messages.js';
import { IpcRequester, rpcChannel } from './rpc.js';

/**
 * Child -> parent: store these records (one request per event-loop turn);
 * the answer is each record's id, or why it was not stored, in order.
 */
export const APPEND_RPC = rpcChannel<readonly NewRecord[], AppendResults>(
  'helo:append',
  'helo:appended',
);
type AppendResults = readonly ({ readonly id: number } | { readonly error: string })[];

/** Unanswered appends (records, payload bytes) beyond which `isBackedUp` is true. */
const APPENDS_SOFT_LIMIT = { records: 4_096, bytes: 16 << 20 };
/** Unanswered appends beyond which a new one fails at once; the owner keeps the same bound per child. */
export const APPENDS_HARD_LIMIT = { records: 65_536, bytes: 256 << 20 };

const OWNER_GONE = 'the server process that owns the store is gone';

interface Waiter {
  readonly resolve: (id: number) => void;
  readonly reject: (error: unknown) => void;
  /** The record's payload length, counted in `#unansweredBytes` until answered. */
  readonly bytes: number;
}

export class RemoteStore implements Store {
  /** One request per batch; every batch holds a record, so the record bound below comes first. */
  readonly #appends: IpcRequester<readonly NewRecord[], AppendResults>;
  /** Records appended in this turn, not sent yet. */
  #unsent: NewRecord[] = [];
  #unsentWaiters: Waiter[] = [];
  #isClosed = false;
  /** Appends not answered yet (unsent and in flight), and their payload bytes. */
  #unanswered = 0;
  #unansweredBytes = 0;

  constructor(owner: IpcPeer) {
    this.#appends = new IpcRequester(owner, APPEND_RPC, {
      maxOutstanding: APPENDS_HARD_LIMIT.records,
      errors: {
        gone: () => new StoreError(OWNER_GONE),
        answer: (message) => new StoreError(message),
      },
      onGone: () => this.failAll(OWNER_GONE),
    });
  }

  /** True while so many appends wait for an answer that connections should stop reading. */
  get isBackedUp(): boolean {
    return (
      this.#unanswered >= APPENDS_SOFT_LIMIT.records ||
      this.#unansweredBytes >= APPENDS_SOFT_LIMIT.bytes
    );
  }

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
      if (this.#unsent.length === 0) setImmediate(this.#sendBatch);
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
    if (this.#unsent.length > 0) this.#sendBatch();
    await this.#appends.idle();
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
  }

  #settle(waiter: Waiter, outcome: { readonly id: number } | { readonly error: unknown }): void {
    this.#unanswered--;
    this.#unansweredBytes -= waiter.bytes;
    if ('id' in outcome) waiter.resolve(outcome.id);
    else waiter.reject(outcome.error);
  }

  readonly #sendBatch = (): void => {
    if (this.#unsent.length === 0) return;
    const records = this.#unsent;
    const waiters = this.#unsentWaiters;
    this.#unsent = [];
    this.#unsentWaiters = [];
    this.#appends.request(records).then(
      (results) =>
        waiters.forEach((waiter, i) => {
          const result = results[i];
          if (result === undefined) this.#settle(waiter, { error: new StoreError('no answer') });
          else if ('id' in result) this.#settle(waiter, result);
          else this.#settle(waiter, { error: new StoreError(result.error) });
        }),
      (error: unknown) => waiters.forEach((waiter) => this.#settle(waiter, { error })),
    );
  };
}
