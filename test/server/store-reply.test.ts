/**
 * One place turns a store's answer into `300 DRCV` or `500 FAIL`
 * (src/server/store-reply.ts), for every transport: on one real server, a
 * store that refuses and a store that throws get the same reply, the same
 * log line and the same counters over TCP and over UDP.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { startServer, type HeloServer } from '../../src/server/server.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { StoreError } from '../../src/errors.js';
import type { NewRecord } from '../../src/store/store.js';
import { RawClient } from '../helpers/raw-client.js';
import { UdpPeer } from '../udp/lossy-relay.js';

/** Refuses a payload starting with `refuse`, throws (a bug) for one starting with `boom`. */
class PickyStore extends MemoryStore {
  override append(record: NewRecord): Promise<number> {
    const text = record.payload.toString('latin1');
    if (text.startsWith('refuse')) return Promise.reject(new StoreError('disk on fire (test)'));
    if (text.startsWith('boom')) throw new TypeError('a bug in the store');
    return super.append(record);
  }
}

describe('store reply: one 500 FAIL for every transport', () => {
  let server: HeloServer | undefined;
  const store = new PickyStore();
  after(async () => {
    await server?.close();
    await store.close();
  });

  it('TCP and UDP answer, log and count a store failure alike', async () => {
    const lines: Record<string, unknown>[] = [];
    const logger = pino(
      { level: 'error' },
      { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
    );
    server = await startServer({ port: 0, udpPort: 0, store, logger });
    const client = await RawClient.open(server.port);
    client.write('DATA ok\r\nDATA refuse\r\nDATA boom\r\n');
    const expected = '300 DRCV\r\n500 FAIL\r\n500 FAIL\r\n';
    await client.until(() => client.text === expected, 2_000, 'DRCV, FAIL, FAIL');
    client.close();

    const peer = await UdpPeer.open();
    try {
      for (const [payload, reply] of [
        ['ok', '300 DRCV\r\n'],
        ['refuse', '500 FAIL\r\n'],
        ['boom', '500 FAIL\r\n'],
      ]) {
        assert.equal(await peer.request(`DATA ${payload}`, server.udpPort!), reply);
      }
    } finally {
      await peer.close();
    }

    const counters = server.countersData();
    assert.equal(counters.payloadsStored, 2);
    assert.equal(counters.payloadsFailed, 4);
    assert.equal(counters.replies['300'], 2);
    assert.equal(counters.replies['500'], 4);
    assert.equal(counters.connectionsTotal.udp, 3);
    assert.equal(counters.connectionsCurrent.udp, 0);

    const failures = lines.filter((line) => line.msg === 'payload not stored; answering 500 FAIL');
    assert.deepEqual(
      failures.map((line) => [line.transport ?? 'tcp', line.err]),
      [
        ['tcp', 'disk on fire (test)'],
        ['tcp', 'a bug in the store'],
        ['udp', 'disk on fire (test)'],
        ['udp', 'a bug in the store'],
      ],
    );
    assert.ok(failures.every((line) => typeof line.session === 'string'));
  });
});
