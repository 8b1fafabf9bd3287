import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import Database from 'better-sqlite3';
import { InvalidArgumentError, StoreError } from '../../src/errors.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { CommitInfo } from '../../src/store/sqlite-store.js';
import type { NewRecord } from '../../src/store/store.js';

let directory = '';
let files = 0;

before(async () => {
  directory = await mkdtemp(join(tmpdir(), 'helo-sqlite-store-'));
});

after(async () => {
  await rm(directory, { recursive: true, force: true });
});

function newPath(): string {
  return join(directory, `store-${++files}.db`);
}

function record(payload: string, name: string | null = null): NewRecord {
  return {
    receivedAt: Date.now(),
    session: 'session-1',
    peer: '127.0.0.1:40000',
    name,
    payload: Buffer.from(payload),
  };
}

function assertStoreError(error: unknown, pattern: RegExp): true {
  assert.ok(error instanceof StoreError, `expected a StoreError, got ${String(error)}`);
  assert.equal(error.code, 'HELO_ERR_STORE');
  assert.match(error.message, pattern);
  assert.ok(!error.message.includes('\n'), `one line: ${JSON.stringify(error.message)}`);
  return true;
}

describe('SqliteStore group commit', () => {
  test('commits every append made in one turn in one transaction', async () => {
    const commits: CommitInfo[] = [];
    const store = SqliteStore.open(newPath(), { onCommit: (info) => commits.push(info) });
    try {
      const ids = await Promise.all(
        Array.from({ length: 50 }, (_, index) => store.append(record(`p${index}`))),
      );
      assert.deepEqual(
        ids,
        Array.from({ length: 50 }, (_, index) => index + 1),
      );
      assert.equal(commits.length, 1);
      assert.equal(commits[0]?.records, 50);
      assert.equal(commits[0]?.ok, true);
      assert.ok((commits[0]?.durationMs ?? -1) >= 0);

      // Appends on different turns are different transactions.
      await store.append(record('later 1'));
      await store.append(record('later 2'));
      assert.deepEqual(
        commits.map((info) => info.records),
        [50, 1, 1],
      );
      assert.deepEqual(store.stats, { commits: 3, records: 52, failedCommits: 0 });
    } finally {
      await store.close();
    }
  });

  test('rejects every record of a failed commit with a StoreError, then commits the next batch', async () => {
    const path = newPath();
    const commits: CommitInfo[] = [];
    const store = SqliteStore.open(path, {
      busyTimeoutMs: 20,
      onCommit: (info) => commits.push(info),
    });
    // Another process holding the write lock longer than the store waits:
    // the batch's BEGIN IMMEDIATE fails with SQLITE_BUSY.
    const blocker = new Database(path);
    try {
      blocker.exec('BEGIN IMMEDIATE');
      const results = await Promise.allSettled([
        store.append(record('a')),
        store.append(record('b')),
        store.append(record('c')),
      ]);
      for (const result of results) {
        assert.equal(result.status, 'rejected');
        assertStoreError(
          result.reason,
          /^cannot store 3 record\(s\) in sqlite:.*: database is locked$/,
        );
        assert.equal((result.reason as StoreError).cause instanceof Database.SqliteError, true);
        assert.equal(((result.reason as StoreError).cause as { code: string }).code, 'SQLITE_BUSY');
      }
      assert.deepEqual(
        commits.map(({ records, ok }) => ({ records, ok })),
        [{ records: 3, ok: false }],
      );

      blocker.exec('COMMIT');
      const id = await store.append(record('d'));
      assert.deepEqual(
        (await store.read(0, 10)).map((stored) => [stored.id, stored.payload.toString()]),
        [[id, 'd']],
      );
      assert.equal(commits.at(-1)?.ok, true);
      assert.deepEqual(store.stats, { commits: 1, records: 1, failedCommits: 1 });
    } finally {
      if (blocker.inTransaction) blocker.exec('ROLLBACK');
      blocker.close();
      await store.close();
    }
  });

  test('rejects a malformed record alone, without failing the rest of its batch', async () => {
    const store = SqliteStore.open(newPath());
    try {
      const bad = { ...record('x'), payload: 'not a buffer' } as unknown as NewRecord;
      const [good, rejected] = await Promise.allSettled([
        store.append(record('good')),
        store.append(bad),
      ]);
      assert.equal(good.status, 'fulfilled');
      assert.equal(rejected.status, 'rejected');
      assert.ok(rejected.status === 'rejected' && rejected.reason instanceof InvalidArgumentError);
      assert.deepEqual(
        (await store.read(0, 10)).map((stored) => stored.payload.toString()),
        ['good'],
      );
    } finally {
      await store.close();
    }
  });
});

describe('SqliteStore file', () => {
  test('keeps records across close and reopen, and never reuses an id', async () => {
    const path = newPath();
    const first = SqliteStore.open(path);
    await Promise.all([
      first.append(record('\u0000one', 'Zoë')),
      first.append(record('two')),
      first.append(record('three')),
    ]);
    await first.close();

    // Deleting the newest record must not free its id (AUTOINCREMENT).
    const other = new Database(path);
    other.exec('DELETE FROM records WHERE id = 3');
    other.close();

    const second = SqliteStore.open(path);
    try {
      const read = await second.read(0, 10);
      assert.deepEqual(
        read.map((stored) => [stored.id, stored.payload.toString(), stored.name]),
        [
          [1, '\u0000one', 'Zoë'],
          [2, 'two', null],
        ],
      );
      assert.equal(await second.append(record('four')), 4);
    } finally {
      await second.close();
    }
  });

  test('creates missing parent directories', async () => {
    const path = join(directory, 'deep', 'er', 'helo.db');
    const store = SqliteStore.open(path);
    await store.append(record('x'));
    await store.close();
    assert.ok(existsSync(path));
  });

  test('puts the file in WAL mode with the schema version and table layout', async () => {
    const path = newPath();
    await SqliteStore.open(path).close();
    const db = new Database(path, { readonly: true });
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
      assert.equal(db.pragma('user_version', { simple: true }), 3);
      const columns = db.pragma('table_info(records)') as {
        name: string;
        type: string;
        notnull: number;
      }[];
      assert.deepEqual(
        columns.map(({ name, type, notnull }) => [name, type, notnull]),
        [
          ['id', 'INTEGER', 0],
          ['received_at', 'INTEGER', 1],
          ['session', 'TEXT', 1],
          ['peer', 'TEXT', 1],
          ['name', 'TEXT', 0],
          ['payload', 'BLOB', 1],
          ['client_cert', 'TEXT', 0],
          ['proxy', 'TEXT', 0],
        ],
      );
      const sql = db.prepare("SELECT sql FROM sqlite_master WHERE name = 'records'").pluck().get();
      assert.match(String(sql), /AUTOINCREMENT/);
    } finally {
      db.close();
    }
  });

  test('lets a reader opened with openExisting see commits of a writer that stays open', async () => {
    const path = newPath();
    const writer = SqliteStore.open(path);
    try {
      await writer.append(record('first'));
      const reader = SqliteStore.openExisting(path);
      try {
        assert.deepEqual(
          (await reader.read(0, 10)).map((stored) => stored.payload.toString()),
          ['first'],
        );
        await writer.append(record('second'));
        assert.deepEqual(
          (await reader.read(1, 10)).map((stored) => stored.payload.toString()),
          ['second'],
        );
      } finally {
        await reader.close();
      }
    } finally {
      await writer.close();
    }
  });

  test('openExisting on a missing file fails and creates nothing', () => {
    const path = join(directory, 'missing', 'helo.db');
    assert.throws(
      () => SqliteStore.openExisting(path),
      (error) => assertStoreError(error, /^no store at sqlite:.*missing\/helo\.db$/),
    );
    assert.equal(existsSync(join(directory, 'missing')), false);
  });

  test('openExisting refuses a SQLite file that is not a helo store, and leaves it alone', () => {
    const path = newPath();
    const db = new Database(path);
    db.exec('CREATE TABLE other (x)');
    db.close();
    assert.throws(
      () => SqliteStore.openExisting(path),
      (error) => assertStoreError(error, /^cannot open store sqlite:.*: not a helo store/),
    );
    const check = new Database(path, { readonly: true });
    const tables = check
      .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
      .pluck()
      .all();
    check.close();
    assert.deepEqual(tables, ['other']);
  });

  test('upgrades a version 1 store in place, keeping its records', async () => {
    const path = newPath();
    const v1 = new Database(path);
    v1.exec(`CREATE TABLE records (
      id INTEGER PRIMARY KEY AUTOINCREMENT, received_at INTEGER NOT NULL, session TEXT NOT NULL,
      peer TEXT NOT NULL, name TEXT, payload BLOB NOT NULL)`);
    v1.prepare(
      'INSERT INTO records (received_at, session, peer, name, payload) VALUES (?, ?, ?, ?, ?)',
    ).run(1, 's', 'p', null, Buffer.from('old'));
    v1.pragma('user_version = 1');
    v1.close();
    assert.throws(
      () => SqliteStore.openExisting(path),
      (error) => assertStoreError(error, /older than this helo's/),
    );
    const store = SqliteStore.open(path);
    try {
      await store.append({ ...record('new'), clientCert: 'CN=alice', proxy: '10.0.0.1:4000' });
      const records = await store.read(0, 10);
      assert.deepEqual(
        records.map((r) => [r.payload.toString(), r.clientCert, r.proxy]),
        [
          ['old', null, null],
          ['new', 'CN=alice', '10.0.0.1:4000'],
        ],
      );
    } finally {
      await store.close();
    }
  });

  test('refuses a store written with a newer schema version', () => {
    const path = newPath();
    const db = new Database(path);
    db.pragma('user_version = 4');
    db.close();
    assert.throws(
      () => SqliteStore.open(path),
      (error) => assertStoreError(error, /^cannot open store sqlite:.*: written by a newer helo/),
    );
  });

  test('throws a one-line StoreError naming the path when the directory cannot be created', () => {
    const file = join(directory, 'regular-file');
    writeFileSync(file, 'not a directory');
    for (const path of [join(file, 'helo.db'), join(file, 'sub', 'dir', 'helo.db')]) {
      assert.throws(
        () => SqliteStore.open(path),
        (error) =>
          assertStoreError(
            error,
            new RegExp(`^cannot open store sqlite:${path}: ${file} is not a directory$`),
          ),
      );
    }
  });

  test('throws a one-line StoreError for a file that is not a database, and leaves it alone', () => {
    const path = join(directory, 'not-a-database.db');
    const content = 'this is not SQLite\n'.repeat(300);
    writeFileSync(path, content);
    assert.throws(
      () => SqliteStore.open(path),
      (error) =>
        assertStoreError(
          error,
          new RegExp(`^cannot open store sqlite:${path}: file is not a database$`),
        ),
    );
    assert.equal(readFileSync(path, 'utf8'), content);
  });

  test('throws a StoreError when the path is a directory', () => {
    const path = join(directory, 'a-directory.db');
    mkdirSync(path);
    assert.throws(
      () => SqliteStore.open(path),
      (error) => assertStoreError(error, /^cannot open store sqlite:.*a-directory\.db: /),
    );
  });

  test('read after close rejects with a StoreError', async () => {
    const store = SqliteStore.open(newPath());
    await store.close();
    await assert.rejects(
      () => store.read(0, 1),
      (error) => assertStoreError(error, /closed/),
    );
  });
});
