/**
 * The contract every Store keeps (src/store/store.ts, protocol.md §5), run
 * against each implementation by store-contract.test.ts, as undici runs one
 * suite over its cache stores (test/cache-interceptor/cache-store-test-utils.js).
 */
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { StoreError } from '../../src/errors.js';
import type { NewRecord, Store } from '../../src/store/store.js';

/** Makes a new, empty store; the suite closes it. */
export type StoreFactory = () => Store | Promise<Store>;

function record(payload: Buffer | string, overrides: Partial<NewRecord> = {}): NewRecord {
  return {
    receivedAt: 1_700_000_000_123,
    session: 's-1',
    peer: '127.0.0.1:50000',
    name: null,
    payload: typeof payload === 'string' ? Buffer.from(payload) : payload,
    ...overrides,
  };
}

async function withStore(createStore: StoreFactory, body: (store: Store) => Promise<void>) {
  const store = await createStore();
  try {
    await body(store);
  } finally {
    await store.close();
  }
}

export function storeContract(name: string, createStore: StoreFactory): void {
  describe(`${name} (Store contract)`, () => {
    test('gives increasing ids starting above 0', async () => {
      await withStore(createStore, async (store) => {
        const first = await store.append(record('one'));
        const second = await store.append(record('two'));
        const third = await store.append(record('three'));
        assert.ok(Number.isSafeInteger(first) && first >= 1, `first id ${first}`);
        assert.ok(second > first && third > second, `ids ${first}, ${second}, ${third}`);
      });
    });

    test('reads every record back byte for byte, with its metadata', async () => {
      const payloads = [
        Buffer.from('Hello world'),
        Buffer.from([0x00, 0xff, 0x80, 0x0d, 0x41, 0x00]),
        Buffer.from([0xc3, 0x28, 0xa0, 0xa1, 0xed, 0xa0, 0x80]), // invalid UTF-8
        Buffer.alloc(0),
        Buffer.from('  spaces kept  \r'),
        Buffer.from(Array.from({ length: 64 * 1024 }, (_, index) => index % 256)),
      ];
      const records = payloads.map((payload, index) =>
        record(payload, {
          receivedAt: 1_700_000_000_000 + index,
          session: `session-${index}`,
          peer: index % 2 === 0 ? '127.0.0.1:4000' : '[::1]:4001',
          name: index === 0 ? null : `Zoë 名前 ${index}`,
        }),
      );
      await withStore(createStore, async (store) => {
        const ids: number[] = [];
        for (const each of records) ids.push(await store.append(each));
        const read = await store.read(0, 100);
        assert.equal(read.length, records.length);
        read.forEach((stored, index) => {
          const expected = records[index] as NewRecord;
          assert.equal(stored.id, ids[index]);
          assert.equal(stored.receivedAt, expected.receivedAt);
          assert.equal(typeof stored.receivedAt, 'number');
          assert.equal(stored.session, expected.session);
          assert.equal(stored.peer, expected.peer);
          assert.equal(stored.name, expected.name);
          assert.ok(Buffer.isBuffer(stored.payload), 'payload is a Buffer');
          assert.ok(stored.payload.equals(expected.payload), `payload of record ${index}`);
        });
        assert.equal(read[0]?.name, null);
      });
    });

    test('keeps clientCert and proxy, null when absent', async () => {
      await withStore(createStore, async (store) => {
        await store.append(record('plain'));
        await store.append(record('both', { clientCert: 'CN=alice,O=lab', proxy: '10.0.0.9:443' }));
        const read = await store.read(0, 10);
        assert.deepEqual(
          read.map((stored) => [stored.payload.toString(), stored.clientCert, stored.proxy]),
          [
            ['plain', null, null],
            ['both', 'CN=alice,O=lab', '10.0.0.9:443'],
          ],
        );
      });
    });

    test('pages with afterId and limit, oldest first', async () => {
      await withStore(createStore, async (store) => {
        const ids = await Promise.all(
          ['a', 'b', 'c', 'd', 'e'].map((payload) => store.append(record(payload))),
        );
        const texts = async (afterId: number, limit: number) =>
          (await store.read(afterId, limit)).map((stored) => stored.payload.toString());
        assert.deepEqual(await texts(0, 2), ['a', 'b']);
        assert.deepEqual(await texts(ids[1] as number, 2), ['c', 'd']);
        assert.deepEqual(await texts(ids[3] as number, 2), ['e']);
        assert.deepEqual(await texts(ids[4] as number, 2), []);
        assert.deepEqual(await texts(ids[0] as number, 100), ['b', 'c', 'd', 'e']);
        assert.deepEqual(
          (await store.read(0, 3)).map((stored) => stored.id),
          ids.slice(0, 3),
        );
      });
    });

    test('reads nothing from an empty store', async () => {
      await withStore(createStore, async (store) => {
        assert.deepEqual(await store.read(0, 10), []);
      });
    });

    test('resolves every append made in one turn, with ids in call order', async () => {
      await withStore(createStore, async (store) => {
        const count = 200;
        const pending = Array.from({ length: count }, (_, index) =>
          store.append(record(`payload ${index}`, { session: `s-${index % 7}` })),
        );
        const ids = await Promise.all(pending);
        assert.equal(new Set(ids).size, count);
        for (let index = 1; index < count; index += 1) {
          assert.ok((ids[index] as number) > (ids[index - 1] as number), `id order at ${index}`);
        }
        const read = await store.read(0, count + 1);
        assert.equal(read.length, count);
        assert.deepEqual(
          read.map((stored) => stored.payload.toString()),
          Array.from({ length: count }, (_, index) => `payload ${index}`),
        );
      });
    });

    test('resolves append asynchronously, never before append returns', async () => {
      await withStore(createStore, async (store) => {
        let settled = false;
        const pending = store.append(record('x')).then((id) => {
          settled = true;
          return id;
        });
        await Promise.resolve();
        assert.equal(settled, false);
        assert.ok((await pending) >= 1);
      });
    });

    test("keeps the bytes appended even if the caller's buffer changes afterwards", async () => {
      await withStore(createStore, async (store) => {
        const payload = Buffer.from('original');
        const appended = store.append(record(payload));
        payload.fill(0x21);
        const id = await appended;
        payload.write('changed!');
        const stored = (await store.read(0, 10)).find((each) => each.id === id);
        assert.equal(stored?.payload.toString(), 'original');
      });
    });

    test('close waits for appends in flight, which then resolve', async () => {
      const store = await createStore();
      const pending = [store.append(record('late 1')), store.append(record('late 2'))];
      await store.close();
      const ids = await Promise.all(pending);
      assert.ok((ids[1] as number) > (ids[0] as number));
    });

    test('rejects append after close with a StoreError, and close twice is harmless', async () => {
      const store = await createStore();
      await store.append(record('before'));
      await store.close();
      await assert.rejects(store.append(record('after')), (error: unknown) => {
        assert.ok(error instanceof StoreError);
        assert.equal(error.code, 'HELO_ERR_STORE');
        return true;
      });
      await store.close();
    });
  });
}
