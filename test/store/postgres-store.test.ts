/**
 * PostgresStore on a real, private PostgreSQL cluster (support/postgres.ts):
 * the store contract, the schema race, group commit, and exactly once
 * when a commit's reply is lost (docs/STORES.md, docs/PROTOCOL.md §5).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { StoreError } from '../../src/errors.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { openStore, parseStoreUrl } from '../../src/store/open-store.js';
import type { CommitInfo, NewRecord } from '../../src/store/store.js';
import {
  FaultyProxy,
  freePort,
  startPostgres,
  type PostgresCluster,
} from '../../support/postgres.js';
import { runHelo } from '../helpers/run-cli.js';
import { storeContract } from './store-contract.js';

let cluster: PostgresCluster;

before(async () => {
  cluster = await startPostgres();
});

after(async () => {
  await cluster?.destroy();
});

function record(payload: string): NewRecord {
  return {
    receivedAt: Date.now(),
    session: 's-pg',
    peer: '127.0.0.1:5000',
    name: 'pg',
    payload: Buffer.from(payload),
  };
}

function databaseOf(url: string): string {
  return new URL(url).pathname.slice(1);
}

async function storedPayloads(url: string): Promise<string[]> {
  const rows = await cluster.query<{ payload: Buffer }>(
    databaseOf(url),
    'SELECT payload FROM records ORDER BY id',
  );
  return rows.map((row) => row.payload.toString());
}

/** Waits until the store says it can (or cannot) reach its database, and fails if it never does. */
async function untilReachable(
  store: PostgresStore,
  reachable: boolean,
  withinMs = 5_000,
  message?: string,
): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (store.isReachable !== reachable && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(store.isReachable, reachable, message);
}

storeContract('PostgresStore', async () => PostgresStore.open(await cluster.createDatabase()));

describe('PostgresStore', () => {
  test('--store accepts postgres:// and postgresql:// URLs, and hides a password in errors', () => {
    assert.equal(parseStoreUrl('postgres://helo@127.0.0.1:5432/helo').kind, 'postgres');
    assert.equal(parseStoreUrl('postgresql://helo@/helo?host=/run/postgresql').kind, 'postgres');
    assert.throws(
      () => parseStoreUrl('postgres://u:secret@host:notaport/db'),
      (error: unknown) => error instanceof Error && !error.message.includes('secret'),
    );
  });

  test('five stores opening at once on an empty database make one schema, without error', async () => {
    const url = await cluster.createDatabase();
    const stores = await Promise.all(Array.from({ length: 5 }, () => PostgresStore.open(url)));
    try {
      const ids = await Promise.all(
        stores.map((store, index) => store.append(record(`s${index}`))),
      );
      assert.equal(new Set(ids).size, 5, 'ids unique across the stores');
      const versions = await cluster.query(databaseOf(url), 'SELECT version FROM schema_version');
      assert.deepEqual(versions, [{ version: 1 }]);
    } finally {
      await Promise.all(stores.map((store) => store.close()));
    }
  });

  test('commits every append of one turn in one transaction, acknowledged after COMMIT', async () => {
    const url = await cluster.createDatabase();
    const commits: CommitInfo[] = [];
    const store = await PostgresStore.open(url, { onCommit: (info) => commits.push(info) });
    try {
      const ids = await Promise.all(
        Array.from({ length: 500 }, (_, index) => store.append(record(`batch ${index}`))),
      );
      assert.deepEqual(
        commits.map((info) => [info.records, info.ok]),
        [[500, true]],
      );
      assert.deepEqual(
        [...ids].sort((a, b) => a - b),
        ids,
        'ids in call order',
      );
      const settings = await cluster.query(
        databaseOf(url),
        "SELECT setting FROM pg_settings WHERE name = 'synchronous_commit'",
      );
      assert.deepEqual(settings, [{ setting: 'on' }]);
      assert.equal((await storedPayloads(url)).length, 500);
      // Rows written by one transaction share its id (xmin).
      const transactions = await cluster.query(
        databaseOf(url),
        'SELECT count(DISTINCT xmin::text)::int AS n FROM records',
      );
      assert.deepEqual(transactions, [{ n: 1 }], 'one transaction for the 500 appends');
    } finally {
      await store.close();
    }
  });

  test('pipelines: the next batch fills while one commits', async () => {
    const url = await cluster.createDatabase();
    const commits: CommitInfo[] = [];
    const store = await PostgresStore.open(url, { onCommit: (info) => commits.push(info) });
    try {
      const pending: Promise<number>[] = [];
      for (let turn = 0; turn < 20; turn += 1) {
        for (let index = 0; index < 50; index += 1) pending.push(store.append(record(`t${turn}`)));
        await new Promise((resolve) => setImmediate(resolve));
      }
      await Promise.all(pending);
      const total = commits.reduce((sum, info) => sum + info.records, 0);
      assert.equal(total, 1000);
      assert.ok(commits.length < 20, `batches merged while others committed: ${commits.length}`);
    } finally {
      await store.close();
    }
  });

  test('ids follow the order of the appends across batches (one commit at a time)', async () => {
    const store = await PostgresStore.open(await cluster.createDatabase());
    try {
      const pending: Promise<number>[] = [];
      for (let turn = 0; turn < 200; turn += 1) {
        for (let index = 0; index < 20; index += 1) pending.push(store.append(record(`t${turn}`)));
        await new Promise((resolve) => setImmediate(resolve));
      }
      const ids = await Promise.all(pending);
      assert.deepEqual(
        ids,
        [...ids].sort((a, b) => a - b),
        'a later append never gets a lower id',
      );
    } finally {
      await store.close();
    }
  });

  test('refuses a record the database cannot hold (NUL in a name) alone, not its batch', async () => {
    const store = await PostgresStore.open(await cluster.createDatabase());
    try {
      const [bad, good] = await Promise.allSettled([
        store.append({ ...record('bad'), name: 'a\u0000b' }),
        store.append(record('good')),
      ]);
      assert.equal(bad.status, 'rejected');
      assert.equal(good.status, 'fulfilled');
    } finally {
      await store.close();
    }
  });

  test('a lost COMMIT reply is retried with the same keys: stored exactly once', async () => {
    const url = await cluster.createDatabase();
    const proxy = await FaultyProxy.start(cluster.port);
    const store = await PostgresStore.open(cluster.url(databaseOf(url), proxy.port));
    try {
      for (let round = 0; round < 5; round += 1) {
        proxy.cutNextCommitReply();
        const ids = await Promise.all(
          Array.from({ length: 20 }, (_, index) => store.append(record(`r${round}-${index}`))),
        );
        assert.equal(new Set(ids).size, 20);
      }
      assert.equal(proxy.cuts, 5, 'five replies were lost after the commit');
      const payloads = await storedPayloads(url);
      assert.equal(payloads.length, 100, 'no payload twice, none missing');
      assert.equal(new Set(payloads).size, 100);
    } finally {
      await store.close();
      await proxy.close();
    }
  });

  test('backends terminated mid-commit again and again: resolved stored once, rejected not at all', async () => {
    const url = await cluster.createDatabase();
    const database = databaseOf(url);
    const commits: CommitInfo[] = [];
    const store = await PostgresStore.open(url, { onCommit: (info) => commits.push(info) });
    let killing = true;
    let kills = 0;
    const killer = (async () => {
      while (killing) {
        const rows = await cluster.query<{ t: boolean }>(
          database,
          `SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity
            WHERE application_name = 'helo' AND datname = $1`,
          [database],
        );
        kills += rows.filter((row) => row.t).length;
        await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 20));
      }
    })();
    const outcomes = new Map<string, boolean>();
    let next = 0;
    const started = Date.now();
    const writer = async () => {
      while (Date.now() - started < 2000) {
        const payloads = Array.from({ length: 50 }, () => `p${next++}`);
        const settled = await Promise.allSettled(payloads.map((p) => store.append(record(p))));
        settled.forEach((outcome, index) =>
          outcomes.set(payloads[index]!, outcome.status === 'fulfilled'),
        );
      }
    };
    try {
      await Promise.all([writer(), writer(), writer()]);
      killing = false;
      await killer;
      const deadline = Date.now() + 10_000;
      while (!store.isReachable && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      // Anything still in doubt is removed before this commits.
      await store.append(record('final'));
      assert.equal(store.inDoubtPending, 0);
      const counts = new Map<string, number>();
      for (const payload of await storedPayloads(url)) {
        counts.set(payload, (counts.get(payload) ?? 0) + 1);
      }
      let resolved = 0;
      let rejected = 0;
      for (const [payload, ok] of outcomes) {
        if (ok) {
          resolved += 1;
          assert.equal(counts.get(payload), 1, `${payload} acknowledged: stored exactly once`);
        } else {
          rejected += 1;
          assert.equal(counts.get(payload), undefined, `${payload} refused: not stored`);
        }
      }
      const inDoubt = commits.reduce((sum, info) => sum + (info.inDoubt ?? 0), 0);
      console.log(
        `# terminate storm ${JSON.stringify({ kills, resolved, rejected, inDoubt, ...store.stats })}`,
      );
      assert.ok(kills > 10, `backends terminated: ${kills}`);
      assert.ok(resolved > 0);
      assert.ok(store.stats.retriedCommits > 0, 'some commits lost their connection mid-way');
    } finally {
      killing = false;
      await killer;
      await store.close();
    }
  });

  test('an outcome still unknown after the retry window: 500 FAIL, in doubt, removed before anything new', async () => {
    const url = await cluster.createDatabase();
    const proxy = await FaultyProxy.start(cluster.port);
    const commits: CommitInfo[] = [];
    const store = await PostgresStore.open(cluster.url(databaseOf(url), proxy.port), {
      onCommit: (info) => commits.push(info),
      retryWindowMs: 600,
    });
    try {
      await store.append(record('before'));
      proxy.cutNextCommitReply();
      const lost = Array.from({ length: 10 }, (_, index) => store.append(record(`doubt ${index}`)));
      // The commit lands, its reply is lost, and the database stays away for the whole window.
      await new Promise((resolve) => setTimeout(resolve, 5));
      proxy.refuse = true;
      const outcomes = await Promise.allSettled(lost);
      assert.ok(outcomes.every((outcome) => outcome.status === 'rejected'));
      const reason = (outcomes[0] as PromiseRejectedResult).reason as Error;
      assert.ok(reason instanceof StoreError);
      assert.match(reason.message, /outcome is unknown/);
      assert.equal(
        commits.reduce((sum, info) => sum + (info.inDoubt ?? 0), 0),
        10,
        'counted in doubt',
      );
      assert.equal(proxy.cuts, 1);
      // The rows did land: the database committed them.
      assert.equal((await storedPayloads(url)).filter((p) => p.startsWith('doubt')).length, 10);
      assert.equal(store.isReachable, false);
      await assert.rejects(store.append(record('while away')), StoreError);
      proxy.refuse = false;
      // Back: the probe removes them before any new commit.
      await untilReachable(store, true, 10_000, 'reconnected by itself');
      await store.append(record('after'));
      assert.deepEqual(await storedPayloads(url), ['before', 'after']);
      assert.equal(store.inDoubtPending, 0);
      assert.ok(
        commits.some((info) => info.records === 0 && !info.ok) &&
          commits.at(-2)?.records === 0 &&
          commits.at(-2)?.ok === true,
        'reachability reported through onCommit',
      );
    } finally {
      await store.close();
      await proxy.close();
    }
  });

  test('an idle store notices the database going away and coming back, without crashing', async () => {
    const url = await cluster.createDatabase();
    const proxy = await FaultyProxy.start(cluster.port);
    const reports: CommitInfo[] = [];
    const store = await PostgresStore.open(cluster.url(databaseOf(url), proxy.port), {
      onCommit: (info) => reports.push(info),
    });
    try {
      await store.append(record('warm the pool'));
      proxy.refuse = true; // Idle pooled connections break: 'error' on idle clients.
      await untilReachable(store, false);
      const started = Date.now();
      await assert.rejects(store.append(record('refused')), /unreachable/);
      assert.ok(Date.now() - started < 500, 'rejected at once while unreachable');
      proxy.refuse = false;
      await untilReachable(store, true);
      assert.ok(await store.append(record('back')));
      assert.deepEqual(
        reports
          .filter((info) => info.records === 0)
          .map((info) => info.ok)
          .at(-1),
        true,
      );
      assert.deepEqual(await storedPayloads(url), ['warm the pool', 'back']);
    } finally {
      await store.close();
      await proxy.close();
    }
  });

  test('a backend terminated the moment its connection is made: no crash, and the store comes back', async () => {
    // The terminate arrives in the same read as the end of the start-up: the
    // pool has handed the client over (and stopped listening to it) before
    // the store's own code runs. Seen once in CI as an uncaught 'error'
    // during "backends terminated mid-commit again and again".
    const url = await cluster.createDatabase();
    const proxy = await FaultyProxy.start(cluster.port);
    const store = await PostgresStore.open(cluster.url(databaseOf(url), proxy.port));
    try {
      await store.append(record('before'));
      proxy.refuse = true; // The pooled connections break: the next one is made anew.
      await untilReachable(store, false);
      proxy.terminateAfterNextStartup();
      proxy.refuse = false;
      await untilReachable(store, true);
      assert.equal(proxy.terminations, 1, 'a new connection met the terminate');
      assert.ok(await store.append(record('after')));
      assert.deepEqual(await storedPayloads(url), ['before', 'after']);
    } finally {
      await store.close();
      await proxy.close();
    }
  });

  test('start-up with an unreachable database fails with one clear line', async () => {
    const deadPort = await freePort();
    await assert.rejects(
      openStore(`postgres://helo@127.0.0.1:${deadPort}/nowhere`),
      (error: unknown) => {
        assert.ok(error instanceof StoreError);
        assert.equal(
          error.message,
          `cannot reach the PostgreSQL store at 127.0.0.1:${deadPort}/nowhere (ECONNREFUSED)`,
        );
        return true;
      },
    );
  });
});

describe('helo with a postgres:// store', () => {
  test('helo server exits 1 with one clear line when the database cannot be reached', async () => {
    const deadPort = await freePort();
    const run = await runHelo([
      'server',
      '--port',
      '0',
      '--store',
      `postgres://helo:secret@127.0.0.1:${deadPort}/nowhere`,
    ]);
    assert.equal(run.status, 1);
    assert.equal(
      run.stderr,
      `helo server: cannot reach the PostgreSQL store at 127.0.0.1:${deadPort}/nowhere (ECONNREFUSED)\n`,
    );
  });

  test('helo store export reads it, over the socket folder given by PGHOST/PGPORT as psql would', async () => {
    const url = await cluster.createDatabase();
    const store = await PostgresStore.open(url);
    await store.append(record('one'));
    await store.append({ ...record('two'), clientCert: 'CN=x' });
    await store.close();
    const database = databaseOf(url);
    const run = await runHelo(['store', 'export', '--store', `postgresql:///${database}`], {
      env: { PGHOST: cluster.directory, PGPORT: String(cluster.port), PGUSER: 'helo' },
    });
    assert.equal(run.status, 0, run.stderr);
    const lines = run.stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    assert.deepEqual(
      lines.map((line) => [
        Buffer.from(line.payloadBase64 as string, 'base64').toString(),
        line.clientCert,
      ]),
      [
        ['one', null],
        ['two', 'CN=x'],
      ],
    );
    const viaQuery = await runHelo([
      'store',
      'list',
      '--store',
      `postgres://helo@/${database}?host=${encodeURIComponent(cluster.directory)}&port=${cluster.port}`,
    ]);
    assert.equal(viaQuery.status, 0, viaQuery.stderr);
    assert.match(viaQuery.stdout, /two/);
  });

  test('helo store export on a database without the schema creates nothing and says so', async () => {
    const url = await cluster.createDatabase();
    const run = await runHelo(['store', 'export', '--store', url]);
    assert.equal(run.status, 1);
    assert.match(run.stderr, /not a helo store/);
    const tables = await cluster.query(databaseOf(url), "SELECT to_regclass('records') AS t");
    assert.deepEqual(tables, [{ t: null }]);
  });
});
