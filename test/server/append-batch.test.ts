import assert from 'node:assert/strict';
import { test } from 'node:test';
import { deserialize, serialize } from 'node:v8';
import fc from 'fast-check';
import {
  decodeAppendBatch,
  encodeAppendBatch,
  encodeAppendResults,
} from '../../src/server/ipc/append-batch.js';
import type { NewRecord } from '../../src/store/store.js';

const record: fc.Arbitrary<NewRecord> = fc.record({
  receivedAt: fc.integer({ min: 0, max: 2 ** 45 }),
  session: fc.constantFrom('s1', 's2', 'é-☃'),
  peer: fc.constantFrom('127.0.0.1:1', '[::1]:2', 'unix'),
  name: fc.option(fc.string(), { nil: null }),
  payload: fc.uint8Array({ maxLength: 64 }).map((bytes) => Buffer.from(bytes)),
  clientCert: fc.option(fc.constantFrom('CN=a', 'CN=b'), { nil: null }),
  proxy: fc.option(fc.constantFrom('127.0.0.1:40000', '[::1]:3'), { nil: null }),
});

/** As the IPC channel carries it (structured clone). */
const overIpc = <T>(value: T): T => deserialize(serialize(value)) as T;

test('a batch of appends comes back as the same records, byte for byte', () => {
  fc.assert(
    fc.property(fc.array(record, { maxLength: 50 }), (records) => {
      const decoded = decodeAppendBatch(overIpc(encodeAppendBatch(records)));
      assert.deepEqual(
        decoded.map((r) => ({ ...r, payload: Buffer.from(r.payload) })),
        // fast-check's records have no prototype; the decoded ones are plain objects.
        records.map((r) => ({ ...r })),
      );
    }),
  );
});

test('a malformed batch is refused whole, never stored in part', () => {
  const batch = encodeAppendBatch([
    { receivedAt: 1, session: 's', peer: 'p', name: null, payload: Buffer.from('abc') },
  ]);
  const malformed: unknown[] = [
    null,
    [],
    { ...batch, ends: Uint32Array.of(99) },
    { ...batch, refs: Int32Array.of(7, 0, -1, -1, -1) },
    { ...batch, refs: Int32Array.of(-1, 0, -1, -1) },
    { ...batch, receivedAt: new Float64Array(2) },
    { ...batch, strings: 'sp' },
  ];
  for (const value of malformed) {
    assert.throws(() => decodeAppendBatch(value), { name: 'StoreError' });
  }
});

test('answers keep each record in its place, and say why a record was not stored', () => {
  const { ids, errors } = overIpc(encodeAppendResults([{ id: 5 }, { error: 'full' }, { id: 6 }]));
  assert.deepEqual([...ids], [5, NaN, 6]);
  assert.deepEqual(errors, ['full']);
});
