/**
 * Payloads that arrive in the same event-loop turn, across connections, are
 * committed in one SQLite transaction, and each gets its 300 DRCV only after
 * that commit.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { startServer } from '../../src/server/server.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
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
});
