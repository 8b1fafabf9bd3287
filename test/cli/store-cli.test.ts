/**
 * `helo store list` and `helo store export` through the real executable
 * (cli.md § helo store), against SQLite files written by SqliteStore, by a
 * writer process that is still running, and by one killed with SIGKILL.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { NewRecord } from '../../src/store/store.js';
import {
  assertFailed,
  type CliResult,
  envWithoutHelo,
  runHelo,
  type RunHeloOptions,
} from '../helpers/run-cli.js';
import { HELO_BIN, REPO_ROOT } from '../../support/server-process.js';

const SQLITE_STORE_MODULE = pathToFileURL(join(REPO_ROOT, 'dist/src/store/sqlite-store.js')).href;
/** Bounds every child process, so a hang fails the test instead of the run. */
const CHILD_TIMEOUT_MS = 20_000;
const TEST_OPTIONS = { timeout: 60_000 };

let directory = '';
let files = 0;
const children = new Set<ChildProcess>();

before(async () => {
  directory = await mkdtemp(join(tmpdir(), 'helo-store-cli-'));
});

after(async () => {
  for (const child of children) child.kill('SIGKILL');
  await rm(directory, { recursive: true, force: true });
});

function newPath(): string {
  return join(directory, `store-${++files}.db`);
}

/** `bin/helo ...args` with the time limit of every child process here. */
function helo(
  args: readonly string[],
  options: Pick<RunHeloOptions, 'env' | 'cwd'> = {},
): Promise<CliResult> {
  return runHelo(args, { ...options, timeoutMs: CHILD_TIMEOUT_MS });
}

const RECORDS: readonly NewRecord[] = [
  {
    receivedAt: Date.UTC(2024, 0, 2, 3, 4, 5, 678),
    session: 'sess-a',
    peer: '127.0.0.1:50001',
    name: null,
    payload: Buffer.from('Hello world'),
  },
  {
    receivedAt: Date.UTC(2024, 0, 2, 3, 4, 6, 0),
    session: 'sess-a',
    peer: '127.0.0.1:50001',
    name: 'Zoë',
    payload: Buffer.from([0x00, 0xff, 0x80, 0x0d, 0x41]),
  },
  {
    receivedAt: Date.UTC(2024, 0, 2, 3, 4, 7, 1),
    session: 'sess-b',
    peer: '[::1]:50002',
    name: 'bob',
    payload: Buffer.alloc(0),
  },
];

async function fill(path: string, records: readonly NewRecord[]): Promise<void> {
  const store = SqliteStore.open(path);
  try {
    await Promise.all(records.map((record) => store.append(record)));
  } finally {
    await store.close();
  }
}

function exportLine(id: number, record: NewRecord): string {
  return JSON.stringify({
    id,
    receivedAt: new Date(record.receivedAt).toISOString(),
    session: record.session,
    peer: record.peer,
    name: record.name,
    payloadBase64: record.payload.toString('base64'),
    clientCert: record.clientCert ?? null,
    proxy: record.proxy ?? null,
  });
}

/** Parses export output and checks that the ids run 1, 2, 3... */
function parseExport(stdout: string): { id: number; payloadBase64: string }[] {
  assert.ok(stdout === '' || stdout.endsWith('\n'), 'ends with a newline');
  const lines = stdout === '' ? [] : stdout.slice(0, -1).split('\n');
  const records = lines.map((line) => JSON.parse(line) as { id: number; payloadBase64: string });
  records.forEach((record, index) => assert.equal(record.id, index + 1));
  return records;
}

/** A writer process holding the store open, as a server does. */
interface Writer {
  readonly child: ChildProcess;
  /** How many records the writer has reported as acknowledged so far. */
  acknowledged(): number;
}

/**
 * Starts a writer that appends `count` records and reports it; then, in
 * 'kill' mode, waits to be killed; in 'stream' mode, keeps appending
 * batches and reports each acknowledged total (`acked N`) as a server would
 * send 300 DRCV.
 */
function startWriter(path: string, mode: 'kill' | 'stream', count: number): Promise<Writer> {
  const script = `
    import { SqliteStore } from ${JSON.stringify(SQLITE_STORE_MODULE)};
    const [path, mode, count] = process.argv.slice(1);
    const store = SqliteStore.open(path);
    let next = 0;
    const batch = async (size) => {
      await Promise.all(Array.from({ length: size }, () => {
        const n = next++;
        return store.append({ receivedAt: Date.now(), session: 'w', peer: '127.0.0.1:1', name: null,
          payload: Buffer.from('record ' + n) });
      }));
      process.stdout.write('acked ' + next + '\\n');
    };
    await batch(Number(count));
    if (mode === 'kill') setInterval(() => {}, 1000);
    else for (;;) await batch(20);
  `;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(
      process.execPath,
      ['--input-type=module', '-e', script, path, mode, String(count)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    children.add(child);
    let acknowledged = 0;
    let output = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error('the writer did not start'));
    }, CHILD_TIMEOUT_MS);
    child.on('error', reject);
    child.on('exit', (status, signal) => {
      children.delete(child);
      clearTimeout(timer);
      reject(new Error(`the writer exited early (${status ?? signal})`));
    });
    child.stdout.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const lines = output.split('\n');
      output = lines.pop() ?? '';
      for (const line of lines)
        acknowledged = Number(/^acked (\d+)$/.exec(line)?.[1] ?? acknowledged);
      if (acknowledged >= count) {
        clearTimeout(timer);
        resolvePromise({ child, acknowledged: () => acknowledged });
      }
    });
  });
}

function stop(child: ChildProcess, signal: NodeJS.Signals): Promise<void> {
  return new Promise((resolvePromise) => {
    if (child.exitCode !== null || child.signalCode !== null) return resolvePromise();
    child.once('exit', () => resolvePromise());
    child.kill(signal);
  });
}

const OLD = Date.UTC(2020, 0, 1);

/** `count` records received in 2020, 500 bytes each, then `recent` received now. */
function oldAndNew(count: number, recent: number): NewRecord[] {
  return Array.from({ length: count + recent }, (_, index) => ({
    receivedAt: index < count ? OLD + index : Date.now(),
    session: 'old',
    peer: '127.0.0.1:1',
    name: null,
    payload: Buffer.from(`${index < count ? 'old' : 'new'} ${index} `.padEnd(500, '.')),
  }));
}

describe('helo store stats, prune and backup (SQLite)', () => {
  test(
    'stats: records, payload bytes, oldest and newest, size on disk; --json',
    TEST_OPTIONS,
    async () => {
      const path = newPath();
      await fill(path, RECORDS);
      const json = await helo(['store', 'stats', '--json', '--store', `sqlite:${path}`]);
      assert.equal(json.status, 0, json.stderr);
      const stats = JSON.parse(json.stdout) as Record<string, unknown>;
      const size =
        statSync(path).size + (statSync(`${path}-wal`, { throwIfNoEntry: false })?.size ?? 0);
      assert.deepEqual(stats, {
        records: 3,
        payloadBytes: 11 + 5 + 0,
        oldestReceivedAt: '2024-01-02T03:04:05.678Z',
        newestReceivedAt: '2024-01-02T03:04:07.001Z',
        sizeOnDiskBytes: size,
      });
      const people = await helo(['store', 'stats', '--store', `sqlite:${path}`]);
      assert.equal(people.status, 0, people.stderr);
      assert.match(people.stdout, /^records +3$/m);
      assert.match(people.stdout, /^oldest +2024-01-02T03:04:05\.678Z$/m);
      assert.match(people.stdout, new RegExp(`^size on disk +${size} bytes$`, 'm'));
      const empty = newPath();
      await fill(empty, []);
      const none = await helo(['store', 'stats', '--json', '--store', `sqlite:${empty}`]);
      assert.deepEqual(JSON.parse(none.stdout), {
        records: 0,
        payloadBytes: 0,
        oldestReceivedAt: null,
        newestReceivedAt: null,
        sizeOnDiskBytes:
          statSync(empty).size + (statSync(`${empty}-wal`, { throwIfNoEntry: false })?.size ?? 0),
      });
    },
  );

  test(
    'prune --before deletes the older records, says how many, and the file shrinks',
    TEST_OPTIONS,
    async () => {
      const path = newPath();
      await fill(path, oldAndNew(3000, 200));
      const sizeBefore = statSync(path).size;
      const run = await helo([
        'store',
        'prune',
        '--store',
        `sqlite:${path}`,
        '--before',
        '2021-01-01',
      ]);
      assert.equal(run.status, 0, run.stderr);
      assert.match(run.stdout, /^deleted 3000 records received before 2021-01-01T00:00:00\.000Z$/m);
      assert.match(run.stdout, /bytes given back to the file system/);
      const exported = parseExportAny(
        (await helo(['store', 'export', '--store', `sqlite:${path}`])).stdout,
      );
      assert.equal(exported.length, 200);
      assert.equal(exported[0]?.id, 3001, 'ids are never reused');
      assert.ok(
        statSync(path).size < sizeBefore / 2,
        `the file shrank: ${sizeBefore} -> ${statSync(path).size}`,
      );
      const again = await helo([
        'store',
        'prune',
        '--store',
        `sqlite:${path}`,
        '--older-than',
        '30d',
      ]);
      assert.match(again.stdout, /^deleted 0 records received before /);
    },
  );

  test(
    'prune while a server process writes: no acknowledged record newer than the cut is lost',
    TEST_OPTIONS,
    async () => {
      const path = newPath();
      await fill(path, oldAndNew(20_000, 0));
      const writer = await startWriter(path, 'stream', 50);
      let pruned: CliResult;
      try {
        pruned = await helo(['store', 'prune', '--store', `sqlite:${path}`, '--older-than', '1d']);
        // Let the writer go on past the prune, too.
        const during = writer.acknowledged();
        while (writer.acknowledged() < during + 100) await new Promise((r) => setTimeout(r, 10));
      } finally {
        await stop(writer.child, 'SIGTERM');
      }
      assert.equal(pruned.status, 0, pruned.stderr);
      assert.match(pruned.stdout, /^deleted 20000 records /);
      const acknowledged = writer.acknowledged();
      const payloads = parseExportAny(
        (await helo(['store', 'export', '--store', `sqlite:${path}`])).stdout,
      ).map((record) => Buffer.from(record.payloadBase64, 'base64').toString());
      assert.ok(
        !payloads.some((payload) => payload.startsWith('old ')),
        'every old record is gone',
      );
      const stored = new Set(payloads);
      assert.equal(stored.size, payloads.length, 'nothing stored twice');
      for (let n = 0; n < acknowledged; n++) {
        assert.ok(stored.has(`record ${n}`), `acknowledged record ${n} is still there`);
      }
    },
  );

  test(
    'backup: a consistent copy of a live store, mode 0600; an existing DEST is refused',
    TEST_OPTIONS,
    async () => {
      const path = newPath();
      const destination = join(directory, `backup-${files}.db`);
      const writer = await startWriter(path, 'stream', 200);
      let run: CliResult;
      try {
        run = await helo(['store', 'backup', '--store', `sqlite:${path}`, destination]);
      } finally {
        await stop(writer.child, 'SIGTERM');
      }
      assert.equal(run.status, 0, run.stderr);
      assert.equal(statSync(destination).mode & 0o777, 0o600);
      const copy = parseExport(
        (await helo(['store', 'export', '--store', `sqlite:${destination}`])).stdout,
      );
      assert.ok(copy.length >= 200, `at least what was acknowledged before, got ${copy.length}`);
      copy.forEach((record, index) =>
        assert.equal(Buffer.from(record.payloadBase64, 'base64').toString(), `record ${index}`),
      );
      const again = await helo(['store', 'backup', '--store', `sqlite:${path}`, destination]);
      assertFailed(again, 1, /cannot create .*EEXIST/);
    },
  );

  test('backup of a PostgreSQL store says to use pg_dump, exit 2', TEST_OPTIONS, async () => {
    const run = await helo([
      'store',
      'backup',
      '--store',
      'postgres://helo@127.0.0.1:1/helo',
      'x.db',
    ]);
    assertFailed(run, 2, /pg_dump/);
    assertFailed(
      await helo(['store', 'backup', '--store', `sqlite:${newPath()}`]),
      2,
      /missing DEST/,
    );
  });

  test(
    'prune: exactly one of --before and --older-than, well formed, not in the future; exit 2',
    TEST_OPTIONS,
    async () => {
      const store = ['--store', `sqlite:${newPath()}`];
      assertFailed(await helo(['store', 'prune', ...store]), 2, /exactly one of --before/);
      assertFailed(
        await helo(['store', 'prune', ...store, '--before', '2020-01-01', '--older-than', '1d']),
        2,
        /exactly one of/,
      );
      assertFailed(
        await helo(['store', 'prune', ...store, '--before', 'yesterday']),
        2,
        /ISO 8601/,
      );
      assertFailed(await helo(['store', 'prune', ...store, '--older-than', '30x']), 2, /30d, 12h/);
      assertFailed(
        await helo(['store', 'prune', ...store, '--before', '2999-01-01']),
        2,
        /in the future/,
      );
    },
  );
});

/** Parses export output whose ids need not start at 1 (after a prune). */
function parseExportAny(stdout: string): { id: number; payloadBase64: string }[] {
  return stdout === ''
    ? []
    : stdout
        .slice(0, -1)
        .split('\n')
        .map((line) => JSON.parse(line) as { id: number; payloadBase64: string });
}

describe('helo store export', () => {
  test(
    'prints exactly one JSON line per record, in id order, payload base64 byte for byte',
    TEST_OPTIONS,
    async () => {
      const path = newPath();
      await fill(path, RECORDS);
      const run = await helo(['store', 'export', '--store', `sqlite:${path}`]);
      assert.equal(run.stderr, '');
      assert.equal(run.status, 0);
      const expected = RECORDS.map((record, index) => exportLine(index + 1, record) + '\n').join(
        '',
      );
      assert.equal(run.stdout, expected);
      const second = JSON.parse(run.stdout.split('\n')[1] as string) as { payloadBase64: string };
      assert.deepEqual(
        Buffer.from(second.payloadBase64, 'base64'),
        Buffer.from([0x00, 0xff, 0x80, 0x0d, 0x41]),
      );
    },
  );

  test('reads a store larger than one page completely and in order', TEST_OPTIONS, async () => {
    const path = newPath();
    const records = Array.from({ length: 2500 }, (_, index) => ({
      ...(RECORDS[0] as NewRecord),
      payload: Buffer.from(`payload ${index}`),
    }));
    await fill(path, records);
    const run = await helo(['store', 'export', '--store', `sqlite:${path}`]);
    assert.equal(run.status, 0);
    const exported = parseExport(run.stdout);
    assert.equal(exported.length, 2500);
    assert.equal(
      Buffer.from(exported[2499]?.payloadBase64 ?? '', 'base64').toString(),
      'payload 2499',
    );
  });

  test('prints nothing for an empty store', TEST_OPTIONS, async () => {
    const path = newPath();
    await fill(path, []);
    const run = await helo(['store', 'export', '--store', `sqlite:${path}`]);
    assert.equal(run.status, 0);
    assert.equal(run.stdout, '');
    assert.equal(run.stderr, '');
  });

  test('reads the store named by HELO_STORE, and --store wins over it', TEST_OPTIONS, async () => {
    const path = newPath();
    await fill(path, RECORDS);
    const expected = RECORDS.map((record, index) => exportLine(index + 1, record) + '\n').join('');
    const fromEnv = await helo(['store', 'export'], { env: { HELO_STORE: `sqlite:${path}` } });
    assert.equal(fromEnv.status, 0, fromEnv.stderr);
    assert.equal(fromEnv.stdout, expected);
    const flagWins = await helo(['store', 'export', '--store', `sqlite:${path}`], {
      env: { HELO_STORE: `sqlite:${join(directory, 'elsewhere.db')}` },
    });
    assert.equal(flagWins.status, 0, flagWins.stderr);
    assert.equal(flagWins.stdout, expected);
  });

  test(
    'stops quietly when the reader closes the pipe (export | head -1)',
    TEST_OPTIONS,
    async () => {
      const path = newPath();
      await fill(
        path,
        Array.from({ length: 5000 }, () => ({
          ...(RECORDS[0] as NewRecord),
          payload: Buffer.alloc(300, 0x61),
        })),
      );
      const child = spawn(
        process.execPath,
        [HELO_BIN, 'store', 'export', '--store', `sqlite:${path}`],
        {
          env: envWithoutHelo(),
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      children.add(child);
      const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS);
      let stderr = '';
      let firstLine = '';
      child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
      child.stdout.on('data', (chunk: Buffer) => {
        firstLine += chunk.toString();
        if (firstLine.includes('\n')) child.stdout.destroy();
      });
      const [status, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((done) =>
        child.on('close', (code, killedBy) => done([code, killedBy])),
      );
      clearTimeout(timer);
      children.delete(child);
      assert.equal(signal, null);
      assert.equal(status, 0);
      assert.equal(stderr, '');
      assert.match(firstLine, /^\{"id":1,/);
    },
  );

  test('works while another process has the store open and is writing', TEST_OPTIONS, async () => {
    const path = newPath();
    const { child: writer } = await startWriter(path, 'stream', 50);
    try {
      const first = await helo(['store', 'export', '--store', `sqlite:${path}`]);
      assert.equal(first.status, 0, first.stderr);
      assert.equal(first.stderr, '');
      const firstCount = parseExport(first.stdout).length;
      assert.ok(firstCount >= 50, `at least the first 50 records, got ${firstCount}`);
      const second = await helo(['store', 'list', '--store', `sqlite:${path}`]);
      assert.equal(second.status, 0, second.stderr);
      const match = /^(\d+) records in /m.exec(second.stdout);
      assert.ok(match, second.stdout.slice(-200));
      assert.ok(Number(match[1]) >= firstCount);
    } finally {
      await stop(writer, 'SIGTERM');
    }
  });

  test(
    'works after the writer was killed with SIGKILL, its -wal file left behind',
    TEST_OPTIONS,
    async () => {
      const path = newPath();
      const { child: writer } = await startWriter(path, 'kill', 300);
      await stop(writer, 'SIGKILL');
      assert.ok(
        existsSync(`${path}-wal`) && statSync(`${path}-wal`).size > 0,
        'a -wal file is left',
      );
      const run = await helo(['store', 'export', '--store', `sqlite:${path}`]);
      assert.equal(run.status, 0, run.stderr);
      assert.equal(run.stderr, '');
      const exported = parseExport(run.stdout);
      assert.equal(exported.length, 300);
      assert.deepEqual(
        exported.map((record) => Buffer.from(record.payloadBase64, 'base64').toString()),
        Array.from({ length: 300 }, (_, index) => `record ${index}`),
      );
    },
  );

  test(
    'has every record acknowledged before a SIGKILL in the middle of writing (protocol.md §5)',
    TEST_OPTIONS,
    async () => {
      const path = newPath();
      const writer = await startWriter(path, 'stream', 20);
      // Let it get well into writing, then kill it between two of its commits
      // or in the middle of one: wherever, nothing acknowledged may be lost.
      while (writer.acknowledged() < 400 && writer.child.exitCode === null)
        await new Promise((done) => setTimeout(done, 5));
      const acknowledged = writer.acknowledged();
      await stop(writer.child, 'SIGKILL');
      const run = await helo(['store', 'export', '--store', `sqlite:${path}`]);
      assert.equal(run.status, 0, run.stderr);
      const exported = parseExport(run.stdout);
      assert.ok(
        exported.length >= acknowledged,
        `${exported.length} records exported, ${acknowledged} acknowledged`,
      );
    },
  );
});

describe('helo store list', () => {
  test('prints a readable table with escaped payload previews', TEST_OPTIONS, async () => {
    const path = newPath();
    await fill(path, [
      ...RECORDS,
      { ...(RECORDS[0] as NewRecord), name: 'evil\u001b[2J', payload: Buffer.alloc(100, 0x42) },
    ]);
    const run = await helo(['store', 'list', '--store', `sqlite:${path}`]);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stderr, '');
    const lines = run.stdout.split('\n');
    assert.match(lines[0] ?? '', /^id\s+received\s+session\s+peer\s+name\s+bytes\s+payload$/);
    assert.match(
      lines[1] ?? '',
      /^ *1 {2}2024-01-02T03:04:05\.678Z {2}sess-a +127\.0\.0\.1:50001 +- +11 {2}"Hello world"$/,
    );
    assert.match(lines[2] ?? '', /^ *2 .* Zoë +5 {2}"\\0\\xff\\x80\\rA"$/);
    assert.match(lines[3] ?? '', /^ *3 .*\[::1\]:50002 +bob +0 {2}""$/);
    assert.match(lines[4] ?? '', /evil\\u001b\[2J +100 {2}"B{40}"\.\.\.$/);
    assert.ok(!run.stdout.includes('\u001b'), 'no raw escape character reaches the terminal');
    assert.equal(lines[5], '');
    assert.equal(lines[6], `4 records in sqlite:${path}`);
  });

  test('says so when the store is empty', TEST_OPTIONS, async () => {
    const path = newPath();
    await fill(path, []);
    const run = await helo(['store', 'list', '--store', `sqlite:${path}`]);
    assert.equal(run.status, 0);
    assert.equal(run.stdout, `0 records in sqlite:${path}\n`);
  });
});

describe('helo store failures and help', () => {
  test(
    'a missing store is one line on stderr, exit 1, and is not created',
    TEST_OPTIONS,
    async () => {
      const path = join(directory, 'absent', 'helo.db');
      for (const command of ['export', 'list']) {
        const run = await helo(['store', command, '--store', `sqlite:${path}`]);
        assertFailed(run, 1, /^helo store: no store at sqlite:.*absent\/helo\.db$/);
      }
      assert.equal(existsSync(join(directory, 'absent')), false);
    },
  );

  test('defaults to sqlite:./data/helo.db in the working directory', TEST_OPTIONS, async () => {
    const run = await helo(['store', 'export'], { cwd: directory });
    assertFailed(run, 1, /^helo store: no store at sqlite:\.\/data\/helo\.db /);
    assert.equal(existsSync(join(directory, 'data')), false);
  });

  test('a file that is not a store is one line on stderr, exit 1', TEST_OPTIONS, async () => {
    const path = join(directory, 'not-a-store.txt');
    await writeFile(path, 'plain text, not SQLite\n'.repeat(100));
    const run = await helo(['store', 'export', '--store', `sqlite:${path}`]);
    assertFailed(run, 1, /^helo store: cannot open store sqlite:.*: file is not a database$/);
  });

  test('an unknown store URL is a usage error, exit 2', TEST_OPTIONS, async () => {
    const run = await helo(['store', 'export', '--store', 'bogus:']);
    assertFailed(
      run,
      2,
      /--store must be sqlite:PATH, memory: or postgres:\/\/USER@HOST\[:PORT\]\/DATABASE, got 'bogus:'/,
    );
    const fromEnv = await helo(['store', 'list'], { env: { HELO_STORE: 'postgres:nope' } });
    assertFailed(fromEnv, 2, /got 'postgres:nope'/);
  });

  test(
    'a memory: store cannot be read from another process: one line, exit 1',
    TEST_OPTIONS,
    async () => {
      const run = await helo(['store', 'export', '--store', 'memory:']);
      assertFailed(run, 1, /memory: store lives inside its server process/);
    },
  );

  test(
    'an unknown subcommand or extra argument is a usage error, exit 2',
    TEST_OPTIONS,
    async () => {
      assertFailed(await helo(['store', 'dump']), 2, /unknown command 'dump'/);
      assertFailed(await helo(['store', 'list', 'extra']), 2, /unexpected argument 'extra'/);
      assertFailed(await helo(['store', 'list', '--nope']), 2, /--nope/);
    },
  );

  test('prints usage for helo store --help and for each command', TEST_OPTIONS, async () => {
    const store = await helo(['store', '--help']);
    assert.equal(store.status, 0);
    assert.match(store.stdout, /^usage: helo store <command>/);
    assert.match(store.stdout, /\blist\b[\s\S]*\bexport\b/);
    for (const command of ['list', 'export', 'stats', 'prune', 'backup']) {
      const run = await helo(['store', command, '--help']);
      assert.equal(run.status, 0);
      assert.equal(run.stderr, '');
      assert.match(run.stdout, new RegExp(`^usage: helo store ${command} `));
      assert.match(run.stdout, /--store URL .*default: sqlite:\.\/data\/helo\.db.*\[HELO_STORE\]/);
    }
  });
});
