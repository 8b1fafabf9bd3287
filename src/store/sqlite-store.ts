/**
 * The durable store: one SQLite file in WAL mode (docs/PROTOCOL.md §5).
 *
 * `300 DRCV` is sent when `append()` resolves, so `append()` resolves only
 * after the record's transaction has committed and been synced to disk.
 * Syncing once per record would cap the server at the disk's fsync rate, so
 * appends are committed in groups: records appended by every connection
 * while the group gathers go into one transaction and one sync, and all
 * their promises settle together afterwards. A group gathers for as long as
 * each turn of the event loop brings a new append (gathering.ts).
 *
 * Statements are prepared once and the schema version lives in one place
 * (`SCHEMA_VERSION`, kept in `PRAGMA user_version`), as undici's
 * `lib/cache/sqlite-cache-store.js` does; the durability settings differ on
 * purpose, since undici's store is a cache and this one holds acknowledged
 * payloads.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, rmSync, statSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import Database from 'better-sqlite3';
import { InvalidArgumentError, StoreError } from '../errors.js';
import { Gathering } from './gathering.js';
import { checkReadRange, recordProblem } from './store.js';
import type {
  CommitInfo,
  NewRecord,
  PruneResult,
  Store,
  StoredRecord,
  StoreSummary,
} from './store.js';

/** Defined with the Store interface; still exported here, where it was first. */
export type { CommitInfo } from './store.js';

/**
 * Bump when the table layout changes, and teach `#ensureSchema` to migrate
 * from the previous version. A file with a higher version was written by a
 * newer helo and is refused rather than misread.
 */
const SCHEMA_VERSION = 3;

export interface SqliteStoreOptions {
  /**
   * How long to wait for another connection's lock before failing, in ms.
   * Default 5000. Other processes use the same file (`helo store export`
   * while the server writes; several server processes later), and their
   * transactions are short, so waiting beats failing. The wait blocks this
   * process's event loop (better-sqlite3 is synchronous), which is why it is
   * bounded: past it, the batch fails and its clients get `500 FAIL`.
   */
  readonly busyTimeoutMs?: number;
  /**
   * Called after every group commit, successful or not, once the batch's
   * promises have been settled. A throwing listener is a bug and surfaces
   * as an uncaught exception, like an EventEmitter listener's.
   */
  readonly onCommit?: (info: CommitInfo) => void;
  /**
   * For tests only: `PRAGMA max_page_count`, the most pages (4 KiB each)
   * this connection lets the file grow to. Past it SQLite fails a write
   * with SQLITE_FULL, exactly as on a full disk, which is how the fault
   * tests stand in for a full disk where they cannot fill a real one.
   */
  readonly maxPageCount?: number;
}

/** Counters since the store was opened. */
export interface SqliteStoreStats {
  /** Transactions committed. */
  readonly commits: number;
  /** Records in committed transactions. */
  readonly records: number;
  /** Transactions that failed (their records were rejected, not stored). */
  readonly failedCommits: number;
}

const DEFAULT_BUSY_TIMEOUT_MS = 5000;
/**
 * Rows deleted, or pages given back, per transaction by prune(): each holds
 * the write lock for a few milliseconds, so a server writing meanwhile waits
 * that long (within its busy_timeout), never for the whole prune.
 */
const PRUNE_BATCH_ROWS = 2000;
const VACUUM_BATCH_PAGES = 2000;
/** Pause between prune transactions, so that a waiting server gets the lock. */
const PRUNE_PAUSE_MS = 5;

interface PendingAppend {
  readonly record: NewRecord;
  readonly resolve: (id: number) => void;
  readonly reject: (error: unknown) => void;
}

type InsertParams = [
  receivedAt: number,
  session: string,
  peer: string,
  name: string | null,
  payload: Buffer,
  clientCert: string | null,
  proxy: string | null,
];

/**
 * Failures after which this connection stays broken even once the fault is
 * gone. SQLite opens a file it may not write (mode 0444, `chattr +i`) read
 * only, silently, and keeps it read only for the life of the connection: a
 * server started on such a file would answer `500 FAIL` until restarted
 * even after the file is made writable again. So after these, the next
 * batch opens a fresh connection first. (SQLite creates the -wal and -shm
 * files with the database file's mode: made while it was 0444, they must be
 * made writable too, `chmod u+w helo.db*`; docs/FAULTS.md.)
 */
const REOPEN_AFTER = /^SQLITE_(READONLY|CANTOPEN)/;

/** The prepared statements of one connection; replaced together when the store reopens. */
interface Connected {
  readonly db: Database.Database;
  readonly readAfter: Database.Statement<[afterId: number, limit: number], StoredRecord>;
  readonly insertBatch: Database.Transaction<(batch: readonly NewRecord[]) => number[]>;
}

export class SqliteStore implements Store {
  readonly #path: string;
  /** `sqlite:PATH` as given, for messages. */
  readonly #label: string;
  readonly #options: SqliteStoreOptions;
  readonly #onCommit: ((info: CommitInfo) => void) | undefined;
  #connected: Connected;
  /** Set by a failure in REOPEN_AFTER: the next batch starts on a new connection. */
  #mustReopen = false;
  #queue: PendingAppend[] = [];
  readonly #gathering = new Gathering(
    () => this.#flush(),
    () => this.#queue.length,
  );
  #isOpen = true;
  #commits = 0;
  #records = 0;
  #failedCommits = 0;

  /**
   * Opens the store at `path`, creating the parent directory and the
   * database when missing. This is what the server uses.
   */
  static open(path: string, options: SqliteStoreOptions = {}): SqliteStore {
    return SqliteStore.#open(path, options, true);
  }

  /**
   * Opens a store that must already exist, without creating anything and
   * without changing its schema: for readers such as `helo store export`,
   * where a mistyped path must not leave an empty database behind.
   */
  static openExisting(path: string, options: SqliteStoreOptions = {}): SqliteStore {
    if (!existsSync(path)) {
      const where = isAbsolute(path) ? path : `${path} (${resolve(path)})`;
      throw new StoreError(`no store at sqlite:${where}`);
    }
    return SqliteStore.#open(path, options, false);
  }

  static #open(path: string, options: SqliteStoreOptions, create: boolean): SqliteStore {
    const label = `sqlite:${path}`;
    const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
    if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
      throw new InvalidArgumentError(
        `busyTimeoutMs must be a whole number of ms >= 0, got ${busyTimeoutMs}`,
      );
    }
    const maxPageCount = options.maxPageCount;
    if (maxPageCount !== undefined && (!Number.isSafeInteger(maxPageCount) || maxPageCount < 1)) {
      throw new InvalidArgumentError(
        `maxPageCount must be a whole number of pages >= 1, got ${maxPageCount}`,
      );
    }
    // Before the try: this refusal is the whole message, not a cause.
    if (create) refuseHardLinks(path);
    let db: Database.Database | undefined;
    try {
      const createdDirectory = create ? createParentDirectory(path) : undefined;
      const existed = existsSync(path);
      if (create && !existed) createPrivateFile(path);
      // fileMustExist closes the gap between openExisting's check and here.
      db = new Database(path, { fileMustExist: !create });
      configure(db, busyTimeoutMs, create, options.maxPageCount);
      ensureSchema(db, create);
      if (!existed) syncNewEntries(path, createdDirectory);
      return new SqliteStore(db, path, options);
    } catch (error) {
      try {
        db?.close();
      } catch {
        // Already failing; the first error is the one worth reporting.
      }
      throw new StoreError(`cannot open store ${label}: ${oneLine(error)}`, { cause: error });
    }
  }

  private constructor(db: Database.Database, path: string, options: SqliteStoreOptions) {
    this.#path = path;
    this.#label = `sqlite:${path}`;
    this.#options = options;
    this.#onCommit = options.onCommit;
    this.#connected = prepare(db);
  }

  get isOpen(): boolean {
    return this.#isOpen;
  }

  get stats(): SqliteStoreStats {
    return {
      commits: this.#commits,
      records: this.#records,
      failedCommits: this.#failedCommits,
    };
  }

  append(record: NewRecord): Promise<number> {
    if (!this.#isOpen) {
      return Promise.reject(new StoreError(`store ${this.#label} is closed`));
    }
    // Checked here, one record at a time: a malformed record inside a batch
    // would fail the whole transaction and every other client's payload in it.
    const problem = recordProblem(record);
    if (problem) return Promise.reject(new InvalidArgumentError(`cannot store record: ${problem}`));
    // Copied now because the batch is written on a later turn, and the caller
    // (a framer reusing its buffer) may change these bytes in between.
    const copy: NewRecord = { ...record, payload: Buffer.from(record.payload) };
    return new Promise<number>((resolve, reject) => {
      this.#queue.push({ record: copy, resolve, reject });
      this.#gathering.added();
    });
  }

  async read(afterId: number, limit: number): Promise<StoredRecord[]> {
    checkReadRange(afterId, limit);
    if (!this.#isOpen) throw new StoreError(`store ${this.#label} is closed`);
    try {
      // Ids are assigned inside write transactions, which SQLite serialises:
      // once id N is visible, no record with an id below N can appear later,
      // so paging by "id > last seen" never skips a record.
      return this.#connected.readAfter.all(afterId, limit);
    } catch (error) {
      throw new StoreError(`cannot read store ${this.#label}: ${oneLine(error)}`, {
        cause: error,
      });
    }
  }

  async summary(): Promise<StoreSummary> {
    const db = this.#openDb();
    const row = db
      .prepare(
        `SELECT count(*) AS records, coalesce(sum(length(payload)), 0) AS payloadBytes,
                min(received_at) AS oldestAt, max(received_at) AS newestAt FROM records`,
      )
      .get() as Omit<StoreSummary, 'sizeOnDiskBytes'>;
    const size = (suffix: string) =>
      statSync(`${this.#path}${suffix}`, { throwIfNoEntry: false })?.size ?? 0;
    return { ...row, sizeOnDiskBytes: size('') + size('-wal') };
  }

  /**
   * Deletes in short IMMEDIATE transactions (PRUNE_BATCH_ROWS each), then
   * gives the freed pages back to the file system where the file allows it
   * (`auto_vacuum = INCREMENTAL`, which stores made by this helo have):
   * `incremental_vacuum` moves no live row, so it is a short write like any
   * other. A whole `VACUUM` would hold the write lock for as long as it
   * takes to rewrite the file, and every server batch waiting longer than
   * its busy_timeout would be answered 500 FAIL: it is left to the owner,
   * with the servers stopped. In WAL mode the file shrinks at the next
   * checkpoint.
   */
  async prune(beforeMs: number): Promise<PruneResult> {
    const db = this.#openDb();
    const remove = db.prepare(
      `DELETE FROM records WHERE id IN
         (SELECT id FROM records WHERE received_at < ? ORDER BY id LIMIT ${PRUNE_BATCH_ROWS})`,
    );
    const removeBatch = db.transaction(() => remove.run(beforeMs).changes);
    let deleted = 0;
    for (;;) {
      const changes = this.#withStoreErrors('prune', () => removeBatch.immediate());
      deleted += changes;
      if (changes < PRUNE_BATCH_ROWS) break;
      await sleep(PRUNE_PAUSE_MS);
    }
    const autoVacuum = db.pragma('auto_vacuum', { simple: true }) as number;
    const freePages = () => db.pragma('freelist_count', { simple: true }) as number;
    if (autoVacuum !== 2) {
      const pages = freePages();
      return {
        deleted,
        freed:
          `${pages} free page(s) stay inside the file and are reused by new records ` +
          '(this file predates auto_vacuum=INCREMENTAL; `sqlite3 FILE VACUUM` with no server running shrinks it)',
      };
    }
    let released = 0;
    for (let pages = freePages(); pages > 0; pages = freePages()) {
      this.#withStoreErrors('prune', () =>
        db.exec(`PRAGMA incremental_vacuum(${VACUUM_BATCH_PAGES})`),
      );
      const left = freePages();
      released += pages - left;
      if (left >= pages) break;
      await sleep(PRUNE_PAUSE_MS);
    }
    // PASSIVE: never waits for a server; the file shrinks once the WAL is
    // checkpointed past the vacuum, now or at the server's next checkpoint.
    db.pragma('wal_checkpoint(PASSIVE)');
    const pageSize = db.pragma('page_size', { simple: true }) as number;
    return { deleted, freed: `${released * pageSize} bytes given back to the file system` };
  }

  /**
   * A consistent copy of the live store at `destination`, made with
   * `VACUUM INTO`: one read transaction, which in WAL mode never blocks a
   * server writing meanwhile. (The online backup API, `db.backup()`,
   * restarts whenever another process writes between its steps, so against
   * a busy server it may never finish.) The destination is created first,
   * mode 0600 whatever the umask, and must not exist; it is synced.
   */
  async backupTo(destination: string): Promise<void> {
    const db = this.#openDb();
    let fd: number;
    try {
      fd = openSync(destination, 'wx', 0o600);
    } catch (error) {
      throw new StoreError(`cannot create ${destination}: ${oneLine(error)}`, { cause: error });
    }
    closeSync(fd);
    try {
      this.#withStoreErrors('back up', () => db.prepare('VACUUM INTO ?').run(destination));
      const copy = openSync(destination, 'r');
      try {
        fsyncSync(copy);
      } finally {
        closeSync(copy);
      }
      syncNewEntries(destination, undefined);
    } catch (error) {
      rmSync(destination, { force: true });
      throw error;
    }
  }

  #openDb(): Database.Database {
    if (!this.#isOpen) throw new StoreError(`store ${this.#label} is closed`);
    return this.#connected.db;
  }

  #withStoreErrors<T>(what: string, action: () => T): T {
    try {
      return action();
    } catch (error) {
      throw new StoreError(`cannot ${what} store ${this.#label}: ${oneLine(error)}`, {
        cause: error,
      });
    }
  }

  async close(): Promise<void> {
    if (!this.#isOpen) return;
    this.#isOpen = false;
    this.#gathering.cancel();
    try {
      // Appends already queued were promised an answer: commit them first.
      this.#flush();
    } finally {
      this.#connected.db.close();
    }
  }

  #flush(): void {
    const batch = this.#queue;
    if (batch.length === 0) return;
    this.#queue = [];
    const started = performance.now();
    let ids: number[];
    try {
      if (this.#mustReopen) this.#reopen();
      // IMMEDIATE takes the write lock up front, so waiting for another
      // process happens at BEGIN (bounded by busy_timeout), never halfway.
      ids = this.#connected.insertBatch.immediate(batch.map((pending) => pending.record));
    } catch (error) {
      // better-sqlite3 has rolled back; nothing of this batch is stored.
      // After a full disk, a lock held too long or an I/O error the
      // connection is fine for the next batch; after REOPEN_AFTER it is not.
      const durationMs = performance.now() - started;
      if (REOPEN_AFTER.test(errorCode(error))) this.#mustReopen = true;
      this.#failedCommits += 1;
      const failure = new StoreError(
        `cannot store ${batch.length} record(s) in ${this.#label}: ${oneLine(error)}`,
        { cause: error },
      );
      for (const pending of batch) pending.reject(failure);
      this.#onCommit?.({ records: batch.length, durationMs, ok: false });
      return;
    }
    const durationMs = performance.now() - started;
    this.#commits += 1;
    this.#records += batch.length;
    batch.forEach((pending, index) => pending.resolve(ids[index] as number));
    this.#onCommit?.({ records: batch.length, durationMs, ok: true });
  }

  /**
   * Replaces the connection with a new one on the same file. The file must
   * still exist: one deleted under a running server is not silently
   * recreated empty. Throws, leaving #mustReopen set, when it cannot.
   */
  #reopen(): void {
    // The new connection first: if it cannot open, the old one still reads.
    const db = new Database(this.#path, { fileMustExist: true });
    try {
      configure(
        db,
        this.#options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS,
        false,
        this.#options.maxPageCount,
      );
      ensureSchema(db, false);
      const connected = prepare(db);
      try {
        this.#connected.db.close();
      } catch {
        // It is being dropped because it failed already.
      }
      this.#connected = connected;
      this.#mustReopen = false;
    } catch (error) {
      db.close();
      throw error;
    }
  }
}

function prepare(db: Database.Database): Connected {
  const insert = db.prepare<InsertParams>(
    `INSERT INTO records (received_at, session, peer, name, payload, client_cert, proxy)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
  );
  const readAfter = db.prepare<[number, number], StoredRecord>(
    `SELECT id, received_at AS receivedAt, session, peer, name, payload,
            client_cert AS clientCert, proxy
       FROM records WHERE id > ? ORDER BY id LIMIT ?`,
  );
  const insertBatch = db.transaction((batch: readonly NewRecord[]) =>
    batch.map(
      (record) =>
        insert.run(
          record.receivedAt,
          record.session,
          record.peer,
          record.name,
          record.payload,
          record.clientCert ?? null,
          record.proxy ?? null,
        ).lastInsertRowid as number,
    ),
  );
  return { db, readAfter, insertBatch };
}

function configure(
  db: Database.Database,
  busyTimeoutMs: number,
  create: boolean,
  maxPageCount: number | undefined,
): void {
  // First, so that every later step (switching to WAL included) waits for
  // other processes' locks instead of failing at once.
  db.pragma(`busy_timeout = ${busyTimeoutMs}`);
  if (create) {
    // On a new file only, before WAL writes its first page (it cannot change
    // after): prune() can then give freed pages back to the file system
    // without a whole VACUUM. A no-op on a file that has tables.
    if (userVersion(db) === 0) db.pragma('auto_vacuum = INCREMENTAL');
    // WAL: readers (`helo store export`) never block the writer nor wait for
    // it, and a commit is one append to the -wal file. The mode is stored in
    // the file, so readers opened with openExisting inherit it.
    const mode = db.pragma('journal_mode = WAL', { simple: true });
    if (mode !== 'wal') {
      // SQLite keeps the old mode when WAL is impossible (e.g. a network
      // filesystem without shared memory); refuse rather than run otherwise.
      throw new StoreError(`cannot use WAL journal mode (got '${String(mode)}')`);
    }
  }
  // FULL: in WAL mode, every COMMIT syncs the -wal file before returning, so
  // "acknowledged" means committed AND on disk: a SIGKILL at any moment, or
  // a power loss, keeps every payload answered with 300 DRCV (docs/PROTOCOL.md §5).
  // NORMAL would be faster and would lose the last commits on power loss.
  db.pragma('synchronous = FULL');
  if (maxPageCount !== undefined) db.pragma(`max_page_count = ${maxPageCount}`);
}

/** Brings the file to SCHEMA_VERSION, or checks that it is there already. */
function ensureSchema(db: Database.Database, create: boolean): void {
  const version = userVersion(db);
  if (version === SCHEMA_VERSION) return;
  if (version > SCHEMA_VERSION) {
    throw new StoreError(
      `written by a newer helo (schema version ${version}, this one knows ${SCHEMA_VERSION})`,
    );
  }
  if (!create) {
    if (version === 0) throw new StoreError('not a helo store (no schema)');
    throw new StoreError(
      `schema version ${version} is older than this helo's (${SCHEMA_VERSION}); ` +
        'start the server on it once to upgrade it',
    );
  }
  // IMMEDIATE, and the version read again inside: two server processes
  // starting on the same file at once must not both create or migrate it.
  db.transaction(() => {
    const current = userVersion(db);
    if (current === SCHEMA_VERSION) return;
    if (current === 0) {
      // AUTOINCREMENT: ids are never reused, even after the newest records are
      // deleted, so an exported id always names the same payload.
      // payload is a BLOB so that bytes are kept exactly (NUL, 0xFF, invalid
      // UTF-8: docs/PROTOCOL.md §3); name is NULL when the session gave no HELO name.
      db.exec(`CREATE TABLE records (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        received_at INTEGER NOT NULL,
        session TEXT NOT NULL,
        peer TEXT NOT NULL,
        name TEXT,
        payload BLOB NOT NULL,
        client_cert TEXT,
        proxy TEXT
      )`);
    } else {
      // Version 1 -> 2: the TLS client certificate's subject (NULL otherwise).
      if (current < 2) db.exec('ALTER TABLE records ADD COLUMN client_cert TEXT');
      // Version 2 -> 3: the balancer's address under the PROXY protocol (NULL otherwise).
      db.exec('ALTER TABLE records ADD COLUMN proxy TEXT');
    }
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}

/** Returns the first directory created, as `mkdirSync` does, or undefined. */
function createParentDirectory(path: string): string | undefined {
  try {
    // 0700: the records are nobody else's business (docs/SECURITY.md).
    return mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    // A recursive mkdir that meets a regular file says EEXIST or ENOTDIR
    // about some other path: name the file that is in the way instead.
    const blocking = code === 'EEXIST' || code === 'ENOTDIR' ? nonDirectoryOnPath(path) : undefined;
    if (blocking !== undefined) {
      throw new StoreError(`${blocking} is not a directory`, { cause: error });
    }
    throw error;
  }
}

/**
 * SQLite locks a database through its path's inode, but keeps one lock
 * table per process keyed by inode and trusts it for every path: two
 * servers on two hard links of one file wrote over each other's pages and
 * corrupted it (docs/SECURITY.md). A writer on such a file is refused.
 */
function refuseHardLinks(path: string): void {
  let stats;
  try {
    stats = statSync(path);
  } catch {
    return; // Missing or unreadable: opening it says what is wrong.
  }
  // A directory always has several links; opening it says it is not a file.
  const links = stats.nlink;
  if (stats.isFile() && links > 1) {
    throw new StoreError(
      `store ${path} has ${links} hard links: SQLite cannot lock a file across hard links; use one path`,
    );
  }
}

/**
 * Creates the database file readable and writable by its owner only,
 * whatever the umask; SQLite then gives its -wal and -shm files the same
 * mode. An existing file keeps the mode its owner chose.
 */
function createPrivateFile(path: string): void {
  try {
    closeSync(openSync(path, 'wx', 0o600));
  } catch (error) {
    // Created meanwhile by another server starting on it: it made it private.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
  }
}

/** The first existing ancestor of `path` that is not a directory, if any. */
function nonDirectoryOnPath(path: string): string | undefined {
  const ancestors: string[] = [];
  for (let dir = resolve(dirname(path)); ; dir = dirname(dir)) {
    ancestors.unshift(dir);
    if (dirname(dir) === dir) break;
  }
  for (const ancestor of ancestors) {
    const stats = statSync(ancestor, { throwIfNoEntry: false });
    if (stats === undefined) return undefined;
    if (!stats.isDirectory()) return ancestor;
  }
  return undefined;
}

function userVersion(db: Database.Database): number {
  return db.pragma('user_version', { simple: true }) as number;
}

/**
 * Syncs the directory entries of a newly created database file (and of any
 * directories created for it): SQLite syncs the file's contents, but after a
 * power loss a file whose directory entry was never synced can vanish.
 */
function syncNewEntries(path: string, firstCreatedDirectory: string | undefined): void {
  let directory = resolve(dirname(path));
  const directories = [directory];
  if (firstCreatedDirectory !== undefined) {
    // Each created directory's entry lives in its parent, up to the parent
    // of the first (outermost) one mkdir created.
    const outermost = resolve(firstCreatedDirectory);
    while (directory !== outermost && dirname(directory) !== directory) {
      directory = dirname(directory);
      directories.push(directory);
    }
    directories.push(dirname(outermost));
  }
  for (const entry of new Set(directories)) {
    const fd = openSync(entry, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** better-sqlite3's error code (`SQLITE_FULL`, `SQLITE_READONLY`, …), or ''. */
function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : '';
}

/** Error messages go on one line of stderr (docs/ERRORS.md). */
function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.replace(/\s*\n\s*/g, ' ').trim();
}
