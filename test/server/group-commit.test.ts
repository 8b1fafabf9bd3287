/**
 * Payloads that arrive in the same event-loop turn, across connections, are
 * committed in one SQLite transaction, and each gets its 300 DRCV only after
 * that commit.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { startServer } from '../../src/server/server.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { startServerProcess } from '../../support/server-process.js';
import { httpRequest } from '../helpers/http-client.js';
import { delay, RawClient } from '../helpers/raw-client.js';

const CLIENTS = 20;

describe('group commit', () => {
  let dir = '';
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('commits DATA from many connections in one transaction', async () => {
    dir = await mkdtemp(join(tmpdir(), 'helo-group-'));
    const batches: number[] = [];
    const store = SqliteStore.open(join(dir, 'helo.db'), {
      onCommit: (info) => batches.push(info.records),
    });
    const server = await startServer({ port: 0, store, logLevel: 'silent' });
    const clients = await Promise.all(
      Array.from({ length: CLIENTS }, () => RawClient.open(server.port)),
    );
    try {
      // Wait until the server has accepted all of them and reads from each.
      while (server.connections.size < CLIENTS) await delay(5);
      await delay(20);
      clients.forEach((client, i) => client.write(`DATA payload ${i}\r\n`));
      // Hold the event loop while the kernel delivers every write, so that the
      // server finds all twenty sockets readable in one turn.
      const until = Date.now() + 100;
      while (Date.now() < until);
      await Promise.all(clients.map((client) => client.untilBytes('300 DRCV\r\n'.length)));
      assert.equal(
        batches.reduce((sum, size) => sum + size, 0),
        CLIENTS,
      );
      assert.equal(batches.length, 1, `expected one transaction, got batches ${batches.join(',')}`);
      assert.deepEqual(
        (await store.read(0, 100)).map((record) => record.payload.toString()).sort(),
        Array.from({ length: CLIENTS }, (_, i) => `payload ${i}`).sort(),
      );
    } finally {
      for (const client of clients) client.close();
      await server.close();
      await store.close();
    }
  });

  // Issue 16: whole sessions (connect, HELO, DATA, QUIT) from concurrent
  // clients each got their own transaction and fsync, because the server
  // accepts one connection per event-loop turn and committed at the end of
  // every turn. Not timing-sensitive: however slow the machine, twenty
  // connections queued in the kernel are accepted one per turn, so each turn
  // brings an append until the last, and a group that stays open while
  // appends keep coming holds several of them.
  it('commits concurrent whole sessions together (a real server process)', async () => {
    const storeDir = await mkdtemp(join(tmpdir(), 'helo-group-sessions-'));
    await assertSessionsGrouped(`sqlite:${join(storeDir, 'helo.db')}`, async () => {
      await rm(storeDir, { recursive: true, force: true });
    });
  });

  // The memory store settled each turn's appends on their own (mean batch
  // 1.0 under lineload's W4), and so paid more CPU per session than the
  // SQLite store (docs/PERFORMANCE.md): it gathers across turns the same way.
  it('settles concurrent whole sessions together on memory: too', async () => {
    await assertSessionsGrouped('memory:', async () => {});
  });
});

/** CLIENTS whole sessions at once against `helo server --store STORE`: fewer commits than half of them. */
async function assertSessionsGrouped(store: string, cleanUp: () => Promise<void>): Promise<void> {
  const server = startServerProcess(['--store', store, '--http-port', '0']);
  try {
    const port = await server.listening;
    const httpPort = Number((await server.untilStdout(/listening on ws:\/\/[^\s]*:(\d+)/))[1]);
    const replies = await Promise.all(
      Array.from({ length: CLIENTS }, (_, i) => wholeSession(port, i)),
    );
    for (const reply of replies) assert.equal(reply, '100 OK\r\n300 DRCV\r\n200 BYE\r\n');
    const metrics = (await httpRequest(httpPort, '/metrics')).body;
    const sum = Number(/^helo_commit_batch_size_sum (\d+)$/m.exec(metrics)?.[1]);
    const count = Number(/^helo_commit_batch_size_count (\d+)$/m.exec(metrics)?.[1]);
    assert.equal(sum, CLIENTS);
    assert.ok(
      count <= CLIENTS / 2,
      `${CLIENTS} payloads took ${count} commits (mean batch ${(sum / count).toFixed(2)})`,
    );
  } finally {
    await server.stop();
    await cleanUp();
  }
}

/** Connects and sends a whole session at once, as `lineload -s` does; resolves with the replies. */
function wholeSession(port: number, index: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(text));
    socket.write(`HELO client${index}\r\nDATA hello ${index}\r\nQUIT\r\n`);
  });
}
