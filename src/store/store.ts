/**
 * The store: where acknowledged payloads live (docs/PROTOCOL.md §5).
 *
 * The interface is deliberately small — append a record and learn its id,
 * read records back in id order, close — so that SQLite (the embedded
 * default), memory and later a shared database all fit behind it, and one
 * contract test suite checks them all.
 */
import { InvalidArgumentError } from '../errors.js';

/** What the server knows about a payload when it arrives. */
export interface NewRecord {
  /** When the payload line was received, in ms since the epoch. */
  readonly receivedAt: number;
  /** The id of the session that sent it. */
  readonly session: string;
  /** The peer's address, e.g. `127.0.0.1:53122`. */
  readonly peer: string;
  /** The HELO name of the session, or null when none was given. */
  readonly name: string | null;
  /** The payload, byte for byte (NUL and invalid UTF-8 included). */
  readonly payload: Buffer;
  /**
   * The subject of the client's TLS certificate (mutual TLS), e.g.
   * `CN=alice,O=lab`; null (or absent) for every other connection.
   */
  readonly clientCert?: string | null;
  /**
   * Where the connection really came from (`IP:PORT`) when a PROXY protocol
   * header named another client as `peer` (docs/PROTOCOL.md §10); null (or
   * absent) on servers without `--proxy-protocol`.
   */
  readonly proxy?: string | null;
}

/** What one group commit did; for metrics (`helo_commit_batch_size`, `helo_store_commit_seconds`). */
export interface CommitInfo {
  /** How many records the transaction held. */
  readonly records: number;
  /** Wall time of the transaction (BEGIN to synced COMMIT, or to the failure), in ms. */
  readonly durationMs: number;
  /**
   * False when the transaction failed and every record in it was rejected.
   * A report with `records: 0` is no commit: the store says whether its
   * database answers (PostgreSQL lost it, or has it back), for `/readyz`.
   */
  readonly ok: boolean;
  /**
   * Records rejected because the commit's outcome stayed unknown through
   * the retry window (a shared database: `helo_store_in_doubt_total`).
   */
  readonly inDoubt?: number;
}

/** A record as stored: the new record plus its id. */
export interface StoredRecord extends NewRecord {
  /** Monotonically increasing, assigned by the store. */
  readonly id: number;
  readonly clientCert: string | null;
  readonly proxy: string | null;
}

export interface Store {
  /**
   * Stores one record. The promise resolves with the record's id only once
   * the record is durable in the sense this store promises (for SQLite:
   * committed and synced), because `300 DRCV` is sent when it resolves. It
   * rejects when the record could not be stored; the server then answers
   * `500 FAIL`.
   */
  append(record: NewRecord): Promise<number>;

  /**
   * Records with id greater than `afterId`, oldest first, at most `limit`.
   * Asynchronous because a shared database answers over the network;
   * SQLite and memory resolve at once.
   */
  read(afterId: number, limit: number): Promise<StoredRecord[]>;

  /** Waits for appends in flight, then releases the store. */
  close(): Promise<void>;

  /**
   * Optional (SQLite, PostgreSQL): what `helo store stats` prints.
   */
  summary?(): Promise<StoreSummary>;

  /**
   * Optional (SQLite, PostgreSQL): deletes the records received before
   * `beforeMs`, in short transactions so that servers writing meanwhile
   * wait for milliseconds, not for the whole prune (`helo store prune`).
   */
  prune?(beforeMs: number): Promise<PruneResult>;

  /**
   * Optional: every record, oldest first, a page at a time, all from ONE
   * snapshot (PostgreSQL, where several servers commit out of id order and
   * paging by id could skip a record; `helo store export`).
   */
  snapshotPages?(pageRecords: number): AsyncGenerator<StoredRecord[]>;

  /**
   * Optional: true while this process has so many appends unanswered that
   * connections waiting on a commit should stop reading (a cluster worker's
   * store, ipc/remote-store.ts). Absent means never.
   */
  readonly isBackedUp?: boolean;

  /**
   * With `isBackedUp`: calls `wake` once, when a connection paused for it
   * may read again. The store wakes its paused connections a few at a time,
   * so that they do not all read (and append) at once.
   */
  whenReady?(wake: () => void): void;
}

/** `helo store stats`: what a store holds and what it takes on disk. */
export interface StoreSummary {
  readonly records: number;
  /** Payload bytes, summed. */
  readonly payloadBytes: number;
  /** receivedAt of the oldest and newest record, in ms; null when empty. */
  readonly oldestAt: number | null;
  readonly newestAt: number | null;
  /** SQLite: the file plus its -wal; PostgreSQL: `pg_total_relation_size('records')`. */
  readonly sizeOnDiskBytes: number;
}

/** What `helo store prune` did. */
export interface PruneResult {
  readonly deleted: number;
  /** How the space was freed, for people (one line). */
  readonly freed: string;
}

/**
 * Checks the arguments of `Store.read()`, before the store looks at its own
 * state: `afterId` a whole number >= 0, `limit` one >= 1.
 *
 * @throws {InvalidArgumentError} naming the argument and the value given
 */
export function checkReadRange(afterId: number, limit: number): void {
  if (!Number.isSafeInteger(afterId) || afterId < 0) {
    throw new InvalidArgumentError(`afterId must be a whole number >= 0, got ${afterId}`);
  }
  if (!Number.isSafeInteger(limit) || limit < 1) {
    throw new InvalidArgumentError(`limit must be a whole number >= 1, got ${limit}`);
  }
}

/**
 * What is wrong with a record, or undefined. Checked at append(), one
 * record at a time: a malformed record inside a batch would fail the whole
 * transaction and every other client's payload in it.
 */
export function recordProblem(record: NewRecord): string | undefined {
  if (!Buffer.isBuffer(record.payload)) return 'payload must be a Buffer';
  if (!Number.isFinite(record.receivedAt)) return 'receivedAt must be a number of ms';
  if (typeof record.session !== 'string') return 'session must be a string';
  if (typeof record.peer !== 'string') return 'peer must be a string';
  if (record.name !== null && typeof record.name !== 'string') {
    return 'name must be a string or null';
  }
  const cert = record.clientCert;
  if (cert !== undefined && cert !== null && typeof cert !== 'string') {
    return 'clientCert must be a string or null';
  }
  const proxy = record.proxy;
  if (proxy !== undefined && proxy !== null && typeof proxy !== 'string') {
    return 'proxy must be a string or null';
  }
  return undefined;
}
