/**
 * Real servers on a PostgreSQL store (a private cluster, support/postgres.ts):
 * the shared protocol vectors (docs/PROTOCOL.md), every concurrency model
 * writing to one database, and SIGKILL cycles (protocol.md §5, docs/STORES.md).
 */
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { startChildServer } from '../../src/loadgen/child-server.js';
import type { ServerMode } from '../../src/server/options.js';
import { runServer } from '../../src/server/run-server.js';
import type { RunningServer } from '../../src/server/server.js';
import { PostgresStore } from '../../src/store/postgres-store.js';
import { runKillCycles, KILL_CYCLE_DEFAULTS } from '../../support/kill-cycles-lib.js';
import { startPostgres, type PostgresCluster } from '../../support/postgres.js';
import { delay, RawClient } from '../helpers/raw-client.js';
import {
  assertStoredAsVector,
  loadVectors,
  segmentsOf,
  splitAt,
  type Vector,
} from '../helpers/vectors.js';

const HELO_BIN = fileURLToPath(new URL('../../../bin/helo', import.meta.url));

let cluster: PostgresCluster;

before(async () => {
  cluster = await startPostgres();
});

after(async () => {
  await cluster?.destroy();
});

function databaseOf(url: string): string {
  return new URL(url).pathname.slice(1);
}

/** Vectors grouped by the server options they need: one server per group. */
function vectorsByOptions(): Map<string, Vector[]> {
  const groups = new Map<string, Vector[]>();
  for (const vector of loadVectors()) {
    const key = JSON.stringify(vector.options ?? {});
    groups.set(key, [...(groups.get(key) ?? []), vector]);
  }
  return groups;
}

describe('protocol vectors over TCP, event-loop mode, on a PostgreSQL store', () => {
  for (const [optionsKey, vectors] of vectorsByOptions()) {
    describe(`options ${optionsKey}`, () => {
      let server: RunningServer;
      let store: PostgresStore;

      before(async () => {
        store = await PostgresStore.open(await cluster.createDatabase());
        server = await runServer({
          port: 0,
          store,
          logLevel: 'silent',
          mode: 'event-loop',
          ...(vectors[0]!.options ?? {}),
        });
      });

      after(async () => {
        await server.close();
        await store.close();
      });

      async function replay(vector: Vector, split: (segment: Buffer) => Buffer[]): Promise<void> {
        const lastId = (await store.read(0, 1_000_000)).at(-1)?.id ?? 0;
        const client = await RawClient.open(server.port);
        try {
          const silenceMs = (vector.options?.unterminatedAfterMs ?? 0) * 3;
          for (const segment of segmentsOf(vector)) {
            if (segment === null) {
              await delay(silenceMs);
              continue;
            }
            for (const piece of split(segment)) {
              client.write(piece);
              await new Promise((resolve) => setImmediate(resolve));
            }
          }
          if (vector.closes) await client.untilEnded();
          else await client.untilBytes(Buffer.byteLength(vector.replies, 'latin1'));
          assert.equal(client.text, vector.replies, 'replies');
          assertStoredAsVector(await store.read(lastId, 1000), vector);
        } finally {
          client.close();
        }
      }

      for (const vector of vectors) {
        it(`${vector.name}: all in one write, and at random split points`, async () => {
          await replay(vector, (segment) => [segment]);
          await fc.assert(
            fc.asyncProperty(fc.array(fc.nat(), { maxLength: 6 }), (cuts) =>
              replay(vector, (segment) => splitAt(segment, cuts)),
            ),
            { numRuns: 1 },
          );
        });
      }
    });
  }
});

/** One session on its own connection: HELO, `count` DATA, QUIT; the replies. */
function session(port: number, name: string, count: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1' });
    let text = '';
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (text += chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve(text));
    const lines = [`HELO ${name}`];
    for (let n = 0; n < count; n++) lines.push(`DATA ${name}-${n}`);
    lines.push('QUIT');
    socket.write(lines.map((line) => `${line}\r\n`).join(''));
  });
}

describe('every concurrency model on one PostgreSQL store', () => {
  const MODES: readonly { mode: ServerMode; extra: string[] }[] = [
    { mode: 'event-loop', extra: [] },
    { mode: 'sequential', extra: [] },
    { mode: 'fork', extra: [] },
    { mode: 'cluster', extra: ['--workers', '2'] },
  ];

  it('event-loop, sequential, fork and cluster (2 workers) servers all store every payload', async () => {
    const url = await cluster.createDatabase();
    const servers = [];
    try {
      // One after the other: the first creates the schema; then all run at once.
      for (const { mode, extra } of MODES) {
        servers.push(
          await startChildServer({
            name: `helo server (${mode})`,
            args: [
              HELO_BIN,
              'server',
              '--port',
              '0',
              '--store',
              url,
              '--mode',
              mode,
              ...extra,
              '--log-level',
              'warn',
            ],
          }),
        );
      }
      const SESSIONS = 4;
      const PER_SESSION = 5;
      const runs = servers.flatMap((server, index) =>
        Array.from({ length: SESSIONS }, (_, n) =>
          session(server.port, `${MODES[index]!.mode}-${n}`, PER_SESSION),
        ),
      );
      const replies = await Promise.all(runs);
      const expected = `100 OK\r\n${'300 DRCV\r\n'.repeat(PER_SESSION)}200 BYE\r\n`;
      for (const reply of replies) assert.equal(reply, expected);
      const rows = await cluster.query<{ name: string; payload: Buffer }>(
        databaseOf(url),
        'SELECT name, payload FROM records ORDER BY id',
      );
      const payloads = rows.map((row) => row.payload.toString()).sort();
      const wanted = MODES.flatMap(({ mode }) =>
        Array.from({ length: SESSIONS }, (_, n) =>
          Array.from({ length: PER_SESSION }, (_, k) => `${mode}-${n}-${k}`),
        ).flat(),
      ).sort();
      assert.deepEqual(payloads, wanted, 'every payload stored exactly once');
    } finally {
      await Promise.all(servers.map((server) => server.stop()));
    }
  });
});

describe('SIGKILL cycles on a PostgreSQL store', () => {
  it('event-loop mode: 2 kills, every acknowledged payload stored exactly once', async () => {
    const url = await cluster.createDatabase();
    const seed = Date.now() % 1e9;
    const report = await runKillCycles({
      ...KILL_CYCLE_DEFAULTS,
      file: '',
      store: url,
      cycles: 2,
      minKillMs: 200,
      maxKillMs: 600,
      seed,
    });
    for (const cycle of report.cycles) {
      const where = `seed ${seed}, cycle ${cycle.cycle} (killed after ${cycle.killAfterMs} ms)`;
      assert.ok(cycle.acknowledged > 0, `${where}: nothing was acknowledged`);
      assert.equal(cycle.lost, 0, `${where}: acknowledged payloads missing`);
      assert.equal(cycle.duplicated, 0, `${where}: payloads stored twice`);
      assert.equal(cycle.failed, 0, `${where}: 500 FAIL with the database up`);
      assert.equal(cycle.unexpected, 0, `${where}: replies other than 300 DRCV / 500 FAIL`);
    }
    assert.ok(report.ok);
  });
});
