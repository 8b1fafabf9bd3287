/**
 * The shared protocol vectors replayed over a real TCP socket against the
 * real server, in every concurrency model: all in one write, one byte per
 * write, at random split points, and with the client half-closing right
 * after its last byte. The event loop gets every variant; the other models
 * (whose per-connection machinery differs, not their protocol) get fewer,
 * since a fork-mode connection costs a process start.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { ServerMode } from '../../src/server/options.js';
import { ForkServer } from '../../src/server/fork/fork-server.js';
import { runServer } from '../../src/server/run-server.js';
import type { RunningServer } from '../../src/server/server.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { delay, RawClient } from '../helpers/raw-client.js';
import {
  loadVectors,
  oneByteAtATime,
  segmentsOf,
  splitAt,
  type Vector,
} from '../helpers/vectors.js';

type Split = (segment: Buffer) => Buffer[];

const MODES: readonly ServerMode[] = ['event-loop', 'sequential', 'fork', 'cluster'];

for (const mode of MODES) describeVectors(mode);

/** Vectors grouped by the server options they need: one server per group. */
function vectorsByOptions(): Map<string, Vector[]> {
  const groups = new Map<string, Vector[]>();
  for (const vector of loadVectors()) {
    const key = JSON.stringify(vector.options ?? {});
    groups.set(key, [...(groups.get(key) ?? []), vector]);
  }
  return groups;
}

function describeVectors(mode: ServerMode): void {
  const isEventLoop = mode === 'event-loop';
  for (const [optionsKey, vectors] of vectorsByOptions()) {
    describe(`protocol vectors over TCP, ${mode} mode, options ${optionsKey}`, () => {
      // One server at a time: a cluster's workers share their listener by
      // address, so two clusters on port 0 in one process would share one.
      let server: RunningServer;
      let store: MemoryStore;

      before(async () => {
        store = new MemoryStore();
        server = await runServer({
          port: 0,
          store,
          logLevel: 'silent',
          mode,
          workers: 2,
          ...(vectors[0]!.options ?? {}),
        });
      });

      after(() => server.close());

      async function replay(vector: Vector, split: Split, halfClose: boolean): Promise<void> {
        const lastId = store.read(0, Number.MAX_SAFE_INTEGER).at(-1)?.id ?? 0;
        const handedOver = server instanceof ForkServer ? server.sessionsHandedOver : 0;
        const client = await RawClient.open(server.port);
        try {
          // Silences (§9) are timed from when the session reads, after its process has started.
          while (server instanceof ForkServer && server.sessionsHandedOver === handedOver) {
            await delay(5);
          }
          const silenceMs = (vector.options?.unterminatedAfterMs ?? 0) * 3;
          for (const segment of segmentsOf(vector)) {
            if (segment === null) {
              await delay(silenceMs);
              continue;
            }
            const pieces = split(segment);
            for (const piece of pieces) {
              client.write(piece);
              // Give each piece its own trip through the kernel and the server.
              if (pieces.length > 1) await new Promise((resolve) => setImmediate(resolve));
            }
          }
          if (halfClose) client.socket.end();
          const expected = Buffer.byteLength(vector.replies, 'latin1');
          if (vector.closes || halfClose) {
            await client.untilEnded();
          } else {
            await client.untilBytes(expected);
            await delay(20); // anything extra would show up now
            assert.equal(client.isEnded, false, 'the server must keep the connection open');
          }
          assert.equal(client.text, vector.replies, 'replies');
          const records = store.read(lastId, 1000);
          assert.deepEqual(
            records.map((record) => record.payload.toString('latin1')),
            vector.stored,
            'stored payloads',
          );
          if (vector.storedNames) {
            assert.deepEqual(
              records.map((record) => record.name),
              vector.storedNames,
            );
          }
        } finally {
          client.close();
        }
      }

      for (const vector of vectors) {
        describe(vector.name, () => {
          it('all in one write', () => replay(vector, (segment) => [segment], false));
          if (isEventLoop) it('one byte per write', () => replay(vector, oneByteAtATime, false));
          it('at random split points', async () => {
            await fc.assert(
              fc.asyncProperty(fc.array(fc.nat(), { maxLength: 6 }), (cuts) =>
                replay(vector, (segment) => splitAt(segment, cuts), false),
              ),
              { numRuns: isEventLoop ? 3 : 1 },
            );
          });
          if (!vector.closes) {
            it('with a half-close after the last byte: every reply still arrives', () =>
              replay(vector, (segment) => [segment], true));
          }
        });
      }
    });
  }
}
