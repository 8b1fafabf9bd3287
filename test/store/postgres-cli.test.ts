/**
 * `helo store stats`, `prune` and `export` on a PostgreSQL store (a private
 * cluster, support/postgres.ts) while a real server writes to it
 * (docs/STORES.md; protocol.md §5: export reads one consistent snapshot).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { startChildServer, type ChildServer } from '../../src/loadgen/child-server.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import type { NewRecord } from '../../src/store/store.js';
import { HELO_BIN } from '../../support/server-process.js';
import { startPostgres, type PostgresCluster } from '../../support/postgres.js';
import { runHelo } from '../helpers/run-cli.js';

let cluster: PostgresCluster;

before(async () => {
  cluster = await startPostgres();
});

after(async () => {
  await cluster?.destroy();
});

const OLD = Date.UTC(2020, 0, 1);

/** A database holding `count` records received in 2020, 500 payload bytes each. */
async function databaseWithOldRecords(count: number): Promise<string> {
  const url = await cluster.createDatabase();
  const store = await PostgresStore.open(url);
  try {
    const records: NewRecord[] = Array.from({ length: count }, (_, index) => ({
      receivedAt: OLD + index,
      session: 'old',
      peer: '127.0.0.1:1',
      name: null,
      payload: Buffer.from(`old ${index} `.padEnd(500, '.')),
    }));
    await Promise.all(records.map((record) => store.append(record)));
  } finally {
    await store.close();
  }
  return url;
}

/**
 * A real server on the store and one client sending DATA one at a time,
 * each after the previous `300 DRCV`: so ids follow the order of
 * acknowledgement, and what was acknowledged is known exactly.
 */
class Writer {
  acknowledged = 0;
  #stopping = false;
  readonly #socket: Socket;
  readonly done: Promise<void>;

  private constructor(readonly server: ChildServer) {
    this.#socket = connect({ port: server.port, host: '127.0.0.1' });
    this.#socket.setEncoding('latin1');
    let unread = '';
    this.done = new Promise((resolve, reject) => {
      this.#socket.on('error', reject);
      this.#socket.on('close', () => resolve());
    });
    const next = () => {
      if (this.#stopping) this.#socket.end('QUIT\r\n');
      else this.#socket.write(`DATA new ${this.acknowledged}\r\n`);
    };
    this.#socket.on('data', (text: string) => {
      unread += text;
      let end: number;
      while ((end = unread.indexOf('\r\n')) !== -1) {
        const reply = unread.slice(0, end);
        unread = unread.slice(end + 2);
        if (reply === '300 DRCV') {
          this.acknowledged += 1;
          next();
        } else if (reply !== '200 BYE') {
          this.#socket.destroy(new Error(`unexpected reply ${reply}`));
        }
      }
    });
    this.#socket.once('connect', next);
  }

  static async start(url: string): Promise<Writer> {
    const server = await startChildServer({
      name: 'helo server',
      args: [HELO_BIN, 'server', '--port', '0', '--store', url, '--log-level', 'warn'],
    });
    return new Writer(server);
  }

  async until(count: number): Promise<void> {
    while (this.acknowledged < count) await new Promise((resolve) => setTimeout(resolve, 10));
  }

  async stop(): Promise<void> {
    this.#stopping = true;
    await this.done;
    await this.server.stop();
  }
}

async function helo(args: string[]) {
  return runHelo(args, { timeoutMs: 30_000 });
}

describe('helo store on PostgreSQL', () => {
  it('stats: records, payload bytes, oldest and newest, pg_total_relation_size', async () => {
    const url = await databaseWithOldRecords(10);
    const run = await helo(['store', 'stats', '--json', '--store', url]);
    assert.equal(run.status, 0, run.stderr);
    const stats = JSON.parse(run.stdout) as Record<string, unknown>;
    const [size] = await cluster.query<{ size: string }>(
      new URL(url).pathname.slice(1),
      "SELECT pg_total_relation_size('records') AS size",
    );
    assert.deepEqual(stats, {
      records: 10,
      payloadBytes: 5000,
      oldestReceivedAt: '2020-01-01T00:00:00.000Z',
      newestReceivedAt: '2020-01-01T00:00:00.009Z',
      sizeOnDiskBytes: Number(size!.size),
    });
  });

  it('prune while a server writes: old records gone, every acknowledged one kept', async () => {
    const url = await databaseWithOldRecords(12_000);
    const writer = await Writer.start(url);
    let pruned;
    try {
      await writer.until(20);
      pruned = await helo(['store', 'prune', '--store', url, '--older-than', '1d']);
      const during = writer.acknowledged;
      await writer.until(during + 20);
    } finally {
      await writer.stop();
    }
    assert.equal(pruned.status, 0, pruned.stderr);
    assert.match(pruned.stdout, /^deleted 12000 records received before /);
    assert.match(pruned.stdout, /VACUUM/);
    const rows = await cluster.query<{ payload: Buffer }>(
      new URL(url).pathname.slice(1),
      'SELECT payload FROM records ORDER BY id',
    );
    assert.deepEqual(
      rows.map((row) => row.payload.toString()),
      Array.from({ length: writer.acknowledged }, (_, n) => `new ${n}`),
    );
  });

  it(
    'export is one snapshot: while a server writes and a prune deletes, ' +
      'it is the gap-free prefix 1..max of one moment',
    async () => {
      const url = await databaseWithOldRecords(3000);
      const writer = await Writer.start(url);
      try {
        await writer.until(10);
        // The export blocks writing its first page (700 kB) into a pipe nobody
        // reads yet; meanwhile prune deletes every old record, then the export
        // is read to the end. Paging by id would miss what prune took since.
        const exporter = spawn(process.execPath, [HELO_BIN, 'store', 'export', '--store', url], {
          stdio: ['ignore', 'pipe', 'pipe'],
        });
        const exited = once(exporter, 'exit');
        await new Promise((resolve) => setTimeout(resolve, 500));
        const pruned = await helo(['store', 'prune', '--store', url, '--older-than', '1d']);
        assert.match(pruned.stdout, /^deleted 3000 records /);
        await writer.until(writer.acknowledged + 10);
        const chunks: Buffer[] = [];
        exporter.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
        let stderr = '';
        exporter.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
        const [status] = await exited;
        assert.equal(status, 0, stderr);
        const ids = Buffer.concat(chunks)
          .toString()
          .trimEnd()
          .split('\n')
          .map((line) => (JSON.parse(line) as { id: number; proxy: unknown }).id);
        const max = ids.at(-1)!;
        assert.ok(max > 3000, `some of the server's records are in it (max ${max})`);
        assert.deepEqual(
          ids,
          Array.from({ length: max }, (_, index) => index + 1),
          'every id up to the highest, each once, in order',
        );
      } finally {
        await writer.stop();
      }
    },
  );
});
