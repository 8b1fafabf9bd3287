/**
 * The shared protocol vectors replayed over a real TCP socket against the
 * real server: all in one write, one byte per write, at random split points,
 * and with the client half-closing right after its last byte.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import { startServer, type HeloServer } from '../../src/server/server.js';
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

describe('protocol vectors over TCP', () => {
  const servers = new Map<string, { server: HeloServer; store: MemoryStore }>();

  async function serverFor(vector: Vector): Promise<{ server: HeloServer; store: MemoryStore }> {
    const key = JSON.stringify(vector.options ?? {});
    let entry = servers.get(key);
    if (!entry) {
      const store = new MemoryStore();
      const server = await startServer({ port: 0, store, logLevel: 'silent', ...vector.options });
      entry = { server, store };
      servers.set(key, entry);
    }
    return entry;
  }

  before(async () => {
    for (const vector of loadVectors()) await serverFor(vector);
  });

  after(async () => {
    for (const { server } of servers.values()) await server.close();
  });

  async function replay(vector: Vector, split: Split, halfClose: boolean): Promise<void> {
    const { server, store } = await serverFor(vector);
    const lastId = store.read(0, Number.MAX_SAFE_INTEGER).at(-1)?.id ?? 0;
    const client = await RawClient.open(server.port);
    try {
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

  for (const vector of loadVectors()) {
    describe(vector.name, () => {
      it('all in one write', () => replay(vector, (segment) => [segment], false));
      it('one byte per write', () => replay(vector, oneByteAtATime, false));
      it('at random split points', async () => {
        await fc.assert(
          fc.asyncProperty(fc.array(fc.nat(), { maxLength: 6 }), (cuts) =>
            replay(vector, (segment) => splitAt(segment, cuts), false),
          ),
          { numRuns: 3 },
        );
      });
      if (!vector.closes) {
        it('with a half-close after the last byte: every reply still arrives', () =>
          replay(vector, (segment) => [segment], true));
      }
    });
  }
});
