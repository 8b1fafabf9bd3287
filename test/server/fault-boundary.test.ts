/**
 * The fault boundary (src/server/fault-boundary.ts): when helo's own code
 * throws while serving one client, only that client's connection closes;
 * the process, its other clients and new clients go on. The fault is
 * provoked for real: a store whose append throws (instead of rejecting)
 * for one marked payload, reached through a real TCP session.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { startServer, type HeloServer } from '../../src/server/server.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { NewRecord } from '../../src/store/store.js';
import { RawClient } from '../helpers/raw-client.js';

/** A memory store with a bug: a payload starting with `boom` makes append throw. */
class ThrowingStore extends MemoryStore {
  override append(record: NewRecord): Promise<number> {
    if (record.payload.toString('latin1').startsWith('boom')) {
      throw new TypeError('a bug in the store');
    }
    return super.append(record);
  }
}

describe('fault boundary', () => {
  let server: HeloServer;
  const store = new ThrowingStore();
  after(async () => {
    await server?.close();
    await store.close();
  });

  it('answers 500 FAIL when a store throws instead of rejecting', async () => {
    server = await startServer({ port: 0, store, logger: pino({ level: 'silent' }) });
    const client = await RawClient.open(server.port);
    client.write('DATA boom\r\nHELO\r\n');
    await client.until(() => client.text === '500 FAIL\r\n100 OK\r\n', 2_000, 'FAIL then OK');
    client.close();
  });

  it('closes only the connection whose handler threw; the others go on', async () => {
    // A logger with a bug: logging the §8 warning throws. The warning is
    // written from inside the connection's 'data' handler, so without the
    // boundary the exception would end the process (this test's own).
    const faults: string[] = [];
    const buggyLogger = pino(
      {
        level: 'warn',
        hooks: {
          logMethod(args, method) {
            if (args.some((arg) => typeof arg === 'string' && arg.startsWith('HTTP-like line'))) {
              throw new RangeError('a bug in a log call');
            }
            method.apply(this, args);
          },
        },
      },
      { write: (line: string) => void faults.push(line) },
    );
    const buggy = await startServer({ port: 0, store, logger: buggyLogger });
    try {
      const bystander = await RawClient.open(buggy.port);
      bystander.write('HELO\r\n');
      await bystander.until(() => bystander.text === '100 OK\r\n');

      const victim = await RawClient.open(buggy.port);
      victim.write('GET / HTTP/1.1\r\n');
      await victim.untilEnded(2_000);
      assert.equal(buggy.counters.connectionFaults, 1);
      assert.ok(
        faults.some((line) => line.includes('a bug in a log call') && line.includes('"stack"')),
        'the fault is logged with its stack',
      );

      bystander.write('DATA still here\r\n');
      await bystander.until(() => bystander.text === '100 OK\r\n300 DRCV\r\n');
      const newcomer = await RawClient.open(buggy.port);
      newcomer.write('HELO\r\nQUIT\r\n');
      await newcomer.until(() => newcomer.text === '100 OK\r\n200 BYE\r\n');
      bystander.close();
      newcomer.close();
    } finally {
      await buggy.close();
    }
  });

  it('closes only the client whose store failure could not be logged', async () => {
    // The store's answer arrives in a promise reaction (connection.ts,
    // #payloadNotStored): a throw there must close this client, not reach
    // the process as an unhandled rejection.
    const buggyLogger = pino(
      {
        level: 'error',
        hooks: {
          logMethod(args, method) {
            if (
              args.some((arg) => typeof arg === 'string' && arg.startsWith('payload not stored'))
            ) {
              throw new RangeError('a bug in a log call');
            }
            method.apply(this, args);
          },
        },
      },
      { write: () => {} },
    );
    const buggy = await startServer({ port: 0, store, logger: buggyLogger });
    try {
      const victim = await RawClient.open(buggy.port);
      victim.write('HELO\r\nDATA boom\r\n');
      await victim.untilEnded(2_000);
      assert.equal(victim.text, '', 'the reply held for the failed payload never goes out');
      assert.equal(buggy.counters.connectionFaults, 1);

      const newcomer = await RawClient.open(buggy.port);
      newcomer.write('DATA fine\r\nQUIT\r\n');
      await newcomer.until(() => newcomer.text === '300 DRCV\r\n200 BYE\r\n');
      newcomer.close();
    } finally {
      await buggy.close();
    }
  });
});
