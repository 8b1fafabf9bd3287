/**
 * The shared store: one PostgreSQL database that many helo servers write to
 * (docs/STORES.md, docs/PROTOCOL.md §5).
 *
 * Group commit as in SqliteStore: every record appended during one turn of
 * the event loop goes into ONE statement (`INSERT … SELECT FROM unnest(…)`),
 * which in autocommit mode is one transaction, and `append()` resolves only
 * when its reply has come back, with `synchronous_commit = on` set on every
 * session, so the commit is in the server's WAL on disk. While one batch
 * commits the next fills; one commits at a time (MAX_COMMITS_IN_FLIGHT), so
 * that one server's ids follow the order of its appends, as in SQLite.
 *
 * Exactly once: every record gets a random key (`request_key`, UNIQUE)
 * before its first attempt. When the connection breaks after the statement
 * was sent, nobody knows whether it committed; the batch is sent again with
 * the same keys (`ON CONFLICT DO NOTHING`, plus the ids of the rows that had
 * landed) until the answer is known or RETRY_WINDOW_MS has passed. Still
 * unknown: the appends reject (`500 FAIL`), the records are counted "in
 * doubt", and their keys are deleted before any later batch is inserted, so
 * a payload answered `500 FAIL` does not stay stored.
 *
 * Outages: every client and the pool have 'error' listeners (node-postgres
 * emits 'error' on idle clients; unheard it ends the process). While the
 * database does not answer, batches reject at once and one probe reconnects
 * with capped, jittered exponential backoff; `onCommit` reports
 * `{ records: 0, ok }` when reachability changes, which is what `/readyz` reads.
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import pg from 'pg';
import { StoreError } from '../errors.js';
import { checkReadRange, recordProblem } from './store.js';
import type {
  CommitInfo,
  NewRecord,
  PruneResult,
  Store,
  StoredRecord,
  StoreSummary,
} from './store.js';

/** Bump when the layout changes, and teach `migrate` the step from the previous one. */
const SCHEMA_VERSION = 1;
/** `pg_advisory_xact_lock` key serialising schema changes of every helo on the database ('helo'). */
const SCHEMA_LOCK_KEY = 0x68656c6f;

/**
 * Commits on the wire at once: the next batch fills while this one commits.
 * One, not more: two INSERTs on two connections run side by side and take
 * identity values interleaved, and the second could commit first, so a
 * session's pipelined payloads were stored out of request order (the
 * vectors on PostgreSQL, test/store/postgres-server.test.ts). The price,
 * measured with bench/stores.ts (docs/STORES.md): one server's DATA at
 * 0.48x SQLite with one in flight against 0.54x with two, within this
 * shared machine's noise; a batch grows while the one before it commits.
 */
const MAX_COMMITS_IN_FLIGHT = 1;
/** Connections: the commits in flight, a reader, and one spare for the probe. */
const POOL_SIZE = MAX_COMMITS_IN_FLIGHT + 2;
/** Connecting to a database that does not answer gives up after this. */
const CONNECT_TIMEOUT_MS = 2000;
/** Server side: a statement running longer is cancelled (and so known not committed). */
const STATEMENT_TIMEOUT_MS = 2500;
/** Client side: no reply after this and the connection is dropped (outcome unknown). */
const QUERY_TIMEOUT_MS = 3000;
/** How long a batch whose outcome is unknown is retried before it is answered 500 FAIL. */
const RETRY_WINDOW_MS = 2000;
/** Reconnection backoff while the database is unreachable: from, to (capped), both jittered. */
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 2000;
/**
 * With no commit for this long, a `SELECT 1` checks that the database still
 * answers, so that `/readyz` turns 503 on an idle server too (an idle pooled
 * connection usually tells at once, but the pool closes idle ones after 30 s).
 */
const HEARTBEAT_MS = 5000;

export interface PostgresStoreOptions {
  /** Called after every group commit and on each reachability change; see CommitInfo. */
  readonly onCommit?: (info: CommitInfo) => void;
  /** For tests: how long an unknown outcome is retried (default 2000 ms). */
  readonly retryWindowMs?: number;
}

interface PendingAppend {
  readonly record: NewRecord;
  readonly key: string;
  readonly resolve: (id: number) => void;
  readonly reject: (error: unknown) => void;
}

const COLUMNS = 'received_at, session, peer, name, payload, client_cert, proxy, request_key';
const UNNEST = `SELECT r.received_at, r.session, r.peer, r.name, r.payload, r.client_cert, r.proxy, r.request_key
  FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::bytea[], $6::text[], $7::text[], $8::uuid[])
       WITH ORDINALITY AS r(received_at, session, peer, name, payload, client_cert, proxy, request_key, ord)
  ORDER BY r.ord`;
/** First attempt: the keys are new, so nothing can conflict. */
const INSERT_SQL = `INSERT INTO records (${COLUMNS}) ${UNNEST} RETURNING id, request_key`;
/**
 * A retry: the rows of the lost attempt that did land are not inserted again
 * and are found by key instead. The second SELECT reads the snapshot from
 * before this statement, so it sees only those earlier rows, never the new ones.
 */
const RETRY_SQL = `WITH inserted AS (
    INSERT INTO records (${COLUMNS}) ${UNNEST}
    ON CONFLICT (request_key) DO NOTHING RETURNING id, request_key)
  SELECT id, request_key FROM inserted
  UNION ALL SELECT id, request_key FROM records WHERE request_key = ANY($8::uuid[])`;
const DELETE_IN_DOUBT_SQL = 'DELETE FROM records WHERE request_key = ANY($1::uuid[])';
const READ_SQL = `SELECT id, received_at, session, peer, name, payload, client_cert, proxy
  FROM records WHERE id > $1 ORDER BY id LIMIT $2`;
const SNAPSHOT_SQL = `SELECT id, received_at, session, peer, name, payload, client_cert, proxy
  FROM records ORDER BY id`;

const SUMMARY_SQL = `SELECT count(*) AS records, coalesce(sum(octet_length(payload)), 0) AS payload_bytes,
  min(received_at) AS oldest_at, max(received_at) AS newest_at,
  pg_total_relation_size('records') AS size FROM records`;
/** Rows per DELETE in prune(): each transaction short, its locks few. */
const PRUNE_BATCH_ROWS = 5000;
const PRUNE_SQL = `DELETE FROM records WHERE id IN
  (SELECT id FROM records WHERE received_at < $1 ORDER BY id LIMIT ${PRUNE_BATCH_ROWS})`;
/** Maintenance (stats on a large table, VACUUM) may take long: its own, larger bound. */
const MAINTENANCE_TIMEOUT_MS = 10 * 60_000;

/** `postgres://…` or `postgresql://…` */
export function isPostgresUrl(url: string): boolean {
  return /^postgres(ql)?:\/\//i.test(url);
}

/** The URL without its password, for messages. */
export function redactPostgresUrl(url: string): string {
  return redact(url);
}

interface Target {
  readonly host: string;
  readonly port: number;
  readonly database: string;
  readonly user: string;
}

/** Debian's libpq looks here when no host is given at all (psql with no -h). */
const DEFAULT_SOCKET_DIRECTORY = '/var/run/postgresql';

interface UrlParts {
  readonly user: string;
  readonly host: string;
  readonly port: string;
  readonly database: string;
  readonly params: URLSearchParams;
}

/**
 * `postgres://[USER[:PASSWORD]@][HOST][:PORT][/DATABASE][?PARAMS]`, every
 * part optional as libpq allows (`postgres://helo@/helo?host=/run/postgresql`,
 * which WHATWG URL refuses). Null when it is not one.
 */
export function parsePostgresUrl(url: string): UrlParts | null {
  const match =
    /^postgres(?:ql)?:\/\/(?:([^:@/?#]*)(?::([^@/?#]*))?@)?(\[[^\]/?#]*\]|[^:/?#]*)(?::(\d*))?(?:\/([^?#]*))?(?:\?([^#]*))?$/i.exec(
      url,
    );
  if (match === null) return null;
  try {
    return {
      user: decodeURIComponent(match[1] ?? ''),
      host: decodeURIComponent(match[3] ?? '').replace(/^\[(.*)\]$/, '$1'),
      port: match[4] ?? '',
      database: decodeURIComponent(match[5] ?? ''),
      params: new URLSearchParams(match[6] ?? ''),
    };
  } catch {
    return null; // A malformed %-escape.
  }
}

function connectionTarget(url: string): Target {
  const parsed = parsePostgresUrl(url);
  if (parsed === null)
    throw new StoreError(`--store ${redact(url)} is not a valid postgres:// URL`);
  const env = process.env;
  const port = Number(parsed.port || parsed.params.get('port') || env.PGPORT || 5432);
  const user = parsed.user || env.PGUSER || env.USER || 'postgres';
  const database = parsed.database || env.PGDATABASE || user;
  let host = parsed.host || parsed.params.get('host') || env.PGHOST;
  if (!host) {
    // node-postgres falls back to TCP on localhost; libpq to its socket directory.
    host = existsSync(`${DEFAULT_SOCKET_DIRECTORY}/.s.PGSQL.${port}`)
      ? DEFAULT_SOCKET_DIRECTORY
      : 'localhost';
  }
  return { host, port, database, user };
}

/** The URL with a host parameter when it names none (node-postgres would use localhost). */
function withHost(url: string, host: string): string {
  const parsed = parsePostgresUrl(url);
  if (parsed === null || parsed.host !== '' || parsed.params.has('host') || process.env.PGHOST) {
    return url;
  }
  return `${url}${url.includes('?') ? '&' : '?'}host=${encodeURIComponent(host)}`;
}

/** The URL without its password, for messages. */
function redact(url: string): string {
  return url.replace(/^(postgres(?:ql)?:\/\/[^:@/]*):[^@/]*@/i, '$1:***@');
}

export class PostgresStore implements Store {
  readonly #pool: pg.Pool;
  readonly #label: string;
  readonly #onCommit: ((info: CommitInfo) => void) | undefined;
  readonly #retryWindowMs: number;
  /** Clients that have their 'error' listener and session settings. */
  readonly #prepared = new WeakSet<pg.PoolClient>();
  #queue: PendingAppend[] = [];
  #flushImmediate: NodeJS.Immediate | undefined;
  readonly #inFlight = new Set<Promise<void>>();
  /** Keys of records answered 500 FAIL whose commit may have landed: deleted before the next insert. */
  readonly #inDoubt = new Set<string>();
  #reachable = true;
  #lastFailure = '';
  #probeTimer: NodeJS.Timeout | undefined;
  #probing: Promise<void> | undefined;
  #probeAttempt = 0;
  #lastAnswerAt = performance.now();
  readonly #heartbeat: NodeJS.Timeout;
  #isOpen = true;
  #commits = 0;
  #failedCommits = 0;
  #retriedCommits = 0;

  /**
   * Connects, creates or upgrades the schema, and returns the store.
   * Throws a one-line StoreError when the database cannot be reached.
   */
  static async open(url: string, options: PostgresStoreOptions = {}): Promise<PostgresStore> {
    return PostgresStore.#open(url, options, true);
  }

  /** For readers (`helo store export`): the schema must be there already; nothing is created. */
  static async openExisting(
    url: string,
    options: PostgresStoreOptions = {},
  ): Promise<PostgresStore> {
    return PostgresStore.#open(url, options, false);
  }

  static async #open(url: string, options: PostgresStoreOptions, create: boolean) {
    const target = connectionTarget(url);
    const store = new PostgresStore(url, target, options);
    try {
      const client = await store.#checkout();
      try {
        await migrate(client, create);
        client.release();
      } catch (error) {
        client.release(true);
        throw error;
      }
    } catch (error) {
      store.#isOpen = false;
      clearInterval(store.#heartbeat);
      await store.#pool.end().catch(() => {});
      const where = `${target.host}:${target.port}/${target.database}`;
      // Reached, but refused (a wrong password, no such database) or a schema problem.
      if (error instanceof StoreError || error instanceof pg.DatabaseError) {
        throw new StoreError(`PostgreSQL store at ${where}: ${reason(error)}`, { cause: error });
      }
      throw new StoreError(
        `cannot reach the PostgreSQL store at ${where} (${shortReason(error)})`,
        {
          cause: error,
        },
      );
    }
    return store;
  }

  private constructor(url: string, target: Target, options: PostgresStoreOptions) {
    this.#label = `postgres://${target.user}@${target.host}:${target.port}/${target.database}`;
    this.#onCommit = options.onCommit;
    this.#retryWindowMs = options.retryWindowMs ?? RETRY_WINDOW_MS;
    this.#pool = new pg.Pool({
      // node-postgres reads PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE,
      // PGSSLMODE, PGOPTIONS, PGAPPNAME and ~/.pgpass itself; the host is
      // the one gap filled here (connectionTarget).
      connectionString: withHost(url, target.host),
      max: POOL_SIZE,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      statement_timeout: STATEMENT_TIMEOUT_MS,
      query_timeout: QUERY_TIMEOUT_MS,
      keepAlive: true,
      application_name: 'helo',
    });
    // An idle client whose server went away (restart, pg_terminate_backend):
    // the pool drops it; find out at once whether the database still answers.
    this.#pool.on('error', (error) => this.#connectionLost(error));
    // And every client from the moment it connects: the pool listens to a
    // client only while it is idle, and hands a new one over from inside the
    // read that ended its start-up. A terminate in that same read (a restart,
    // pg_terminate_backend) was then an 'error' event nobody listened to:
    // an uncaught exception, the server gone (test/store/postgres-store.test.ts,
    // "a backend terminated the moment its connection is made").
    this.#pool.on('connect', (client) => {
      client.on('error', (error) => this.#connectionLost(error));
    });
    this.#heartbeat = setInterval(() => {
      if (this.#reachable && performance.now() - this.#lastAnswerAt >= HEARTBEAT_MS) {
        this.#probeSoon(0);
      }
    }, HEARTBEAT_MS);
    this.#heartbeat.unref();
  }

  /** False while the database does not answer (what `/readyz` reports for this store). */
  get isReachable(): boolean {
    return this.#reachable;
  }

  /** Counters since the store was opened (a retried commit: its first reply was lost). */
  get stats(): { commits: number; failedCommits: number; retriedCommits: number } {
    return {
      commits: this.#commits,
      failedCommits: this.#failedCommits,
      retriedCommits: this.#retriedCommits,
    };
  }

  /** Records answered 500 FAIL whose removal is still to be done. */
  get inDoubtPending(): number {
    return this.#inDoubt.size;
  }

  append(record: NewRecord): Promise<number> {
    if (!this.#isOpen) return Promise.reject(new StoreError(`store ${this.#label} is closed`));
    const problem = recordProblem(record) ?? textProblem(record);
    if (problem) return Promise.reject(new StoreError(`cannot store record: ${problem}`));
    // Copied: the batch is sent on a later turn, and the caller may reuse its buffer.
    const copy: NewRecord = { ...record, payload: Buffer.from(record.payload) };
    return new Promise<number>((resolve, reject) => {
      this.#queue.push({ record: copy, key: randomUUID(), resolve, reject });
      this.#flushImmediate ??= setImmediate(() => this.#flush());
    });
  }

  async read(afterId: number, limit: number): Promise<StoredRecord[]> {
    checkReadRange(afterId, limit);
    if (!this.#isOpen) throw new StoreError(`store ${this.#label} is closed`);
    try {
      const result = await this.#pool.query(READ_SQL, [afterId, limit]);
      return result.rows.map(storedRecord);
    } catch (error) {
      throw new StoreError(`cannot read store ${this.#label}: ${reason(error)}`, { cause: error });
    }
  }

  async summary(): Promise<StoreSummary> {
    return this.#maintenance('read', async (client) => {
      const row = (await client.query(timed(SUMMARY_SQL, [], MAINTENANCE_TIMEOUT_MS))).rows[0] as {
        records: string;
        payload_bytes: string;
        oldest_at: Date | null;
        newest_at: Date | null;
        size: string;
      };
      return {
        records: Number(row.records),
        payloadBytes: Number(row.payload_bytes),
        oldestAt: row.oldest_at?.getTime() ?? null,
        newestAt: row.newest_at?.getTime() ?? null,
        sizeOnDiskBytes: Number(row.size),
      };
    });
  }

  /**
   * DELETE in batches of PRUNE_BATCH_ROWS, each its own short transaction
   * (servers inserting meanwhile never wait on it: new rows are not locked
   * by a DELETE), then a plain `VACUUM`, which runs beside inserts and makes
   * the space reusable (and gives trailing pages back); without the right
   * to vacuum, autovacuum does the same a little later.
   */
  async prune(beforeMs: number): Promise<PruneResult> {
    return this.#maintenance('prune', async (client) => {
      const before = new Date(beforeMs).toISOString();
      let deleted = 0;
      for (;;) {
        const result = await client.query(timed(PRUNE_SQL, [before], MAINTENANCE_TIMEOUT_MS));
        deleted += result.rowCount ?? 0;
        if ((result.rowCount ?? 0) < PRUNE_BATCH_ROWS) break;
      }
      if (deleted === 0) return { deleted, freed: 'nothing to free' };
      const sizeBefore = await relationSize(client);
      try {
        await client.query(timed('VACUUM records', [], MAINTENANCE_TIMEOUT_MS));
      } catch (error) {
        return {
          deleted,
          freed: `VACUUM refused (${reason(error)}); autovacuum will make the space reusable`,
        };
      }
      const released = Math.max(0, sizeBefore - (await relationSize(client)));
      return {
        deleted,
        freed: `space made reusable by VACUUM; ${released} bytes given back to the file system`,
      };
    });
  }

  /**
   * One snapshot (REPEATABLE READ READ ONLY) read through a cursor, so the
   * pages together are the table at one moment, in id order, whatever the
   * servers commit meanwhile; the database keeps the snapshot, this
   * process one page.
   */
  async *snapshotPages(pageRecords: number): AsyncGenerator<StoredRecord[]> {
    checkReadRange(0, pageRecords);
    if (!this.#isOpen) throw new StoreError(`store ${this.#label} is closed`);
    let client: pg.PoolClient;
    try {
      client = await this.#checkout();
    } catch (error) {
      throw new StoreError(`cannot read store ${this.#label}: ${reason(error)}`, { cause: error });
    }
    let ok = false;
    try {
      await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
      await client.query(`DECLARE helo_export NO SCROLL CURSOR FOR ${SNAPSHOT_SQL}`);
      for (;;) {
        let rows: Row[];
        try {
          rows = (await client.query<Row>(`FETCH ${pageRecords} FROM helo_export`)).rows;
        } catch (error) {
          throw new StoreError(`cannot read store ${this.#label}: ${reason(error)}`, {
            cause: error,
          });
        }
        if (rows.length === 0) break;
        yield rows.map(storedRecord);
        if (rows.length < pageRecords) break;
      }
      await client.query('COMMIT');
      ok = true;
    } finally {
      // Stopped early (a closed pipe) or failed: the connection, and with it
      // the transaction, is dropped rather than reused.
      client.release(!ok);
    }
  }

  /** A connection of its own, without the commit-sized statement timeout, dropped after. */
  async #maintenance<T>(what: string, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    if (!this.#isOpen) throw new StoreError(`store ${this.#label} is closed`);
    let client: pg.PoolClient | undefined;
    try {
      client = await this.#checkout();
      await client.query('SET statement_timeout = 0');
      return await work(client);
    } catch (error) {
      throw new StoreError(`cannot ${what} store ${this.#label}: ${reason(error)}`, {
        cause: error,
      });
    } finally {
      client?.release(true);
    }
  }

  async close(): Promise<void> {
    if (!this.#isOpen) return;
    this.#isOpen = false;
    if (this.#flushImmediate) clearImmediate(this.#flushImmediate);
    this.#flushImmediate = undefined;
    // Appends already queued were promised an answer.
    while (this.#queue.length > 0 || this.#inFlight.size > 0) {
      this.#flush();
      if (this.#inFlight.size > 0) await Promise.race(this.#inFlight);
    }
    clearInterval(this.#heartbeat);
    clearTimeout(this.#probeTimer);
    await this.#probing;
    await this.#pool.end();
  }

  /** Starts commits for what is queued, as far as MAX_COMMITS_IN_FLIGHT allows. */
  #flush(): void {
    this.#flushImmediate = undefined;
    while (this.#queue.length > 0 && this.#inFlight.size < MAX_COMMITS_IN_FLIGHT) {
      const batch = this.#queue;
      this.#queue = [];
      const commit = this.#commit(batch)
        .catch((error: unknown) => {
          // Not expected (#commit settles every append itself); never leave one hanging.
          const failure = new StoreError(`cannot store in ${this.#label}: ${reason(error)}`, {
            cause: error,
          });
          for (const pending of batch) pending.reject(failure);
        })
        .finally(() => {
          this.#inFlight.delete(commit);
          // What filled meanwhile goes next, without waiting for another append.
          if (this.#queue.length > 0 && this.#isOpen) {
            this.#flushImmediate ??= setImmediate(() => this.#flush());
          }
        });
      this.#inFlight.add(commit);
    }
  }

  async #commit(batch: PendingAppend[]): Promise<void> {
    const started = performance.now();
    const settle = (ok: boolean, inDoubt = 0) => {
      if (ok) this.#commits += 1;
      else this.#failedCommits += 1;
      this.#onCommit?.({
        records: batch.length,
        durationMs: performance.now() - started,
        ok,
        ...(inDoubt > 0 ? { inDoubt } : {}),
      });
    };
    const fail = (message: string, cause: unknown) => {
      const failure = new StoreError(
        `cannot store ${batch.length} record(s) in ${this.#label}: ${message}`,
        { cause },
      );
      for (const pending of batch) pending.reject(failure);
    };
    if (!this.#reachable) {
      // Nothing is sent: known not stored. The probe finds out when to try again.
      fail(`the database is unreachable (${this.#lastFailure})`, undefined);
      settle(false);
      return;
    }
    const params = batchParams(batch);
    let client: pg.PoolClient;
    try {
      client = await this.#checkout();
    } catch (error) {
      this.#markUnreachable(error);
      fail(reason(error), error);
      settle(false);
      return;
    }
    try {
      await this.#removeInDoubt(client);
    } catch (error) {
      // The insert was never sent: this batch is known not stored.
      client.release(true);
      if (!outcomeKnown(error)) this.#markUnreachable(error);
      fail(reason(error), error);
      settle(false);
      return;
    }
    let rows: KeyedId[];
    try {
      // Named: parsed and planned once per connection, not once per batch.
      rows = (
        await client.query<KeyedId>({ name: 'helo_insert', text: INSERT_SQL, values: params })
      ).rows;
      client.release();
    } catch (error) {
      client.release(true);
      if (outcomeKnown(error)) {
        fail(reason(error), error);
        settle(false);
        return;
      }
      this.#retriedCommits += 1;
      const retried = await this.#retry(params, performance.now() + this.#retryWindowMs);
      if (retried === null) {
        // In doubt: answered 500 FAIL, so removed as soon as the database answers.
        for (const pending of batch) this.#inDoubt.add(pending.key);
        this.#markUnreachable(error);
        fail(`the commit's outcome is unknown (${reason(error)}); answered as failed`, error);
        settle(false, batch.length);
        return;
      }
      rows = retried;
    }
    this.#lastAnswerAt = performance.now();
    const ids = new Map(rows.map((row) => [row.request_key, Number(row.id)]));
    for (const pending of batch) {
      const id = ids.get(pending.key);
      if (id === undefined) {
        pending.reject(new StoreError(`store ${this.#label} returned no id for a record`));
      } else {
        pending.resolve(id);
      }
    }
    settle(true);
  }

  /**
   * Sends a batch whose first attempt's outcome is unknown again, with the
   * same keys, until an answer comes or `deadline` passes (then null).
   */
  async #retry(params: unknown[], deadline: number): Promise<KeyedId[] | null> {
    for (let attempt = 0; ; attempt += 1) {
      const left = deadline - performance.now();
      if (left <= 0) return null;
      let client: pg.PoolClient | undefined;
      try {
        client = await this.#checkout();
        const timeoutMs = Math.max(100, Math.min(QUERY_TIMEOUT_MS, deadline - performance.now()));
        const rows = (await client.query<KeyedId>(timed(RETRY_SQL, params, timeoutMs))).rows;
        client.release();
        return rows;
      } catch {
        // Even a refused retry (a cancel, a constraint) says nothing about
        // the first attempt: keep trying until the window ends.
        client?.release(true);
      }
      await sleep(Math.min(backoff(attempt), Math.max(0, deadline - performance.now())));
    }
  }

  /** Deletes the records answered 500 FAIL whose commit may have landed; throws if it cannot. */
  async #removeInDoubt(client: pg.PoolClient): Promise<void> {
    if (this.#inDoubt.size === 0) return;
    const keys = [...this.#inDoubt];
    await client.query(DELETE_IN_DOUBT_SQL, [keys]);
    for (const key of keys) this.#inDoubt.delete(key);
  }

  /** A pooled client with this session's settings. */
  async #checkout(): Promise<pg.PoolClient> {
    const client = await this.#pool.connect();
    if (this.#prepared.has(client)) return client;
    // Its 'error' listener is already there (the pool's 'connect' event, above).
    try {
      // Explicit, whatever the server's or the role's default: a commit
      // acknowledged only once it is flushed to the WAL on disk. Never off.
      await client.query('SET synchronous_commit = on');
    } catch (error) {
      client.release(true);
      throw error;
    }
    this.#prepared.add(client);
    return client;
  }

  #connectionLost(error: unknown): void {
    this.#lastFailure = reason(error);
    if (this.#isOpen) this.#probeSoon(0);
  }

  #markUnreachable(error: unknown): void {
    this.#lastFailure = reason(error);
    if (this.#reachable) {
      this.#reachable = false;
      this.#probeAttempt = 0;
    }
    this.#onCommit?.({ records: 0, durationMs: 0, ok: false });
    if (this.#isOpen) this.#probeSoon(backoff(this.#probeAttempt));
  }

  #probeSoon(delayMs: number): void {
    if (this.#probeTimer !== undefined || this.#probing !== undefined) return;
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined;
      this.#probing = this.#probe().finally(() => (this.#probing = undefined));
    }, delayMs);
    this.#probeTimer.unref();
  }

  /** One reconnection attempt: `SELECT 1`, then the in-doubt records removed. */
  async #probe(): Promise<void> {
    let client: pg.PoolClient | undefined;
    try {
      client = await this.#checkout();
      await client.query(timed('SELECT 1', [], CONNECT_TIMEOUT_MS));
      await this.#removeInDoubt(client);
      client.release();
    } catch (error) {
      client?.release(true);
      this.#lastFailure = reason(error);
      if (this.#reachable) {
        this.#reachable = false;
        this.#probeAttempt = 0;
      }
      this.#onCommit?.({ records: 0, durationMs: 0, ok: false });
      this.#probeAttempt += 1;
      if (this.#isOpen) {
        // Scheduled after this probe's promise settles (#probing is still set now).
        const delay = backoff(this.#probeAttempt);
        setImmediate(() => this.#isOpen && this.#probeSoon(delay));
      }
      return;
    }
    this.#lastAnswerAt = performance.now();
    if (!this.#reachable) {
      this.#reachable = true;
      this.#onCommit?.({ records: 0, durationMs: 0, ok: true });
    }
  }
}

interface KeyedId {
  readonly id: string;
  readonly request_key: string;
}

/** Creates or upgrades the schema, one server at a time (an advisory lock held until COMMIT). */
async function migrate(client: pg.PoolClient, create: boolean): Promise<void> {
  if (!create) {
    const exists = await client.query<{ t: string | null }>(
      "SELECT to_regclass('schema_version')::text AS t",
    );
    if (exists.rows[0]?.t == null)
      throw new StoreError('not a helo store (no schema_version table)');
    const version = await currentVersion(client);
    if (version !== SCHEMA_VERSION) throw versionError(version);
    return;
  }
  await client.query('BEGIN');
  try {
    // Several servers starting at once on an empty database: the first
    // creates, the others wait here and then find the schema done.
    await client.query('SELECT pg_advisory_xact_lock($1)', [SCHEMA_LOCK_KEY]);
    await client.query('CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)');
    const version = await currentVersion(client);
    if (version > SCHEMA_VERSION) throw versionError(version);
    if (version === 0) {
      // Ids are unique across every server on the database, never reused.
      // received_at keeps milliseconds, as the other stores; payload is bytes
      // exactly (NUL, 0xFF); request_key makes a retried commit idempotent.
      await client.query(`CREATE TABLE records (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        received_at timestamptz(3) NOT NULL,
        session text NOT NULL,
        peer text NOT NULL,
        name text,
        payload bytea NOT NULL,
        client_cert text,
        proxy text,
        request_key uuid NOT NULL UNIQUE
      )`);
      await client.query('DELETE FROM schema_version');
      await client.query('INSERT INTO schema_version (version) VALUES ($1)', [SCHEMA_VERSION]);
    }
    await client.query('COMMIT');
  } catch (error) {
    await client.query('ROLLBACK').catch(() => {});
    throw error;
  }
}

async function currentVersion(client: pg.PoolClient): Promise<number> {
  const result = await client.query<{ v: number | null }>(
    'SELECT max(version) AS v FROM schema_version',
  );
  return result.rows[0]?.v ?? 0;
}

function versionError(version: number): StoreError {
  return version > SCHEMA_VERSION
    ? new StoreError(
        `written by a newer helo (schema version ${version}, this one knows ${SCHEMA_VERSION})`,
      )
    : new StoreError(
        `schema version ${version} is not this helo's (${SCHEMA_VERSION}); start the server on it once to upgrade it`,
      );
}

async function relationSize(client: pg.PoolClient): Promise<number> {
  const rows = (
    await client.query<{ size: string }>("SELECT pg_total_relation_size('records') AS size")
  ).rows;
  return Number(rows[0]?.size ?? 0);
}

/** A query with its own client-side timeout (node-postgres reads `query_timeout` per query too). */
function timed(text: string, values: unknown[], timeoutMs: number): pg.QueryConfig {
  return { text, values, query_timeout: timeoutMs } as pg.QueryConfig;
}

function batchParams(batch: readonly PendingAppend[]): unknown[] {
  const columns: unknown[][] = [[], [], [], [], [], [], [], []];
  for (const { record, key } of batch) {
    columns[0]!.push(new Date(record.receivedAt).toISOString());
    columns[1]!.push(record.session);
    columns[2]!.push(record.peer);
    columns[3]!.push(record.name);
    columns[4]!.push(record.payload);
    columns[5]!.push(record.clientCert ?? null);
    columns[6]!.push(record.proxy ?? null);
    columns[7]!.push(key);
  }
  return columns;
}

interface Row {
  readonly id: string;
  readonly received_at: Date;
  readonly session: string;
  readonly peer: string;
  readonly name: string | null;
  readonly payload: Buffer;
  readonly client_cert: string | null;
  readonly proxy: string | null;
}

function storedRecord(row: Row): StoredRecord {
  return {
    id: Number(row.id),
    receivedAt: row.received_at.getTime(),
    session: row.session,
    peer: row.peer,
    name: row.name,
    payload: row.payload,
    clientCert: row.client_cert,
    proxy: row.proxy,
  };
}

/**
 * PostgreSQL text cannot hold U+0000, which a HELO name may contain; such
 * a record would fail its whole batch, so it alone is refused (500 FAIL).
 */
function textProblem(record: NewRecord): string | undefined {
  for (const [field, value] of [
    ['session', record.session],
    ['peer', record.peer],
    ['name', record.name],
    ['clientCert', record.clientCert],
    ['proxy', record.proxy],
  ] as const) {
    if (typeof value === 'string' && value.includes('\u0000')) {
      return `${field} contains a NUL character, which PostgreSQL text cannot hold`;
    }
  }
  return undefined;
}

/**
 * True when the server answered the statement with an error, so its
 * transaction was rolled back: the outcome is known (not stored). A broken
 * connection, a timeout, or a FATAL (the backend ending, e.g. terminated or
 * shutting down) leaves it unknown.
 */
function outcomeKnown(error: unknown): boolean {
  if (!(error instanceof pg.DatabaseError)) return false;
  const code = error.code ?? '';
  if (code.startsWith('08') || code.startsWith('57P')) return false;
  return error.severity !== 'FATAL' && error.severity !== 'PANIC';
}

/** Capped exponential backoff with jitter (half to the whole step). */
function backoff(attempt: number): number {
  const step = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(attempt, 16));
  return Math.round(step / 2 + (Math.random() * step) / 2);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The error's code alone where there is one (ECONNREFUSED, 28P01), for the start-up line. */
function shortReason(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  return reason(error);
}

/** One line: the error's code where there is one (ECONNREFUSED, 57P01), else its message. */
function reason(error: unknown): string {
  if (error === undefined) return 'unknown';
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : String(error);
  const line = message.replace(/\s*\n\s*/g, ' ').trim();
  if (typeof code === 'string' && code !== '' && !line.includes(code)) {
    return line === '' ? code : `${code}: ${line}`;
  }
  return line || 'unknown';
}
