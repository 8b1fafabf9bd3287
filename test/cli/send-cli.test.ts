/**
 * `helo send` as a script runs it: the real executable in a child process,
 * a real server in this process, the store checked afterwards.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { startServer, type HeloServer } from '../../src/server/server.js';
import type { Store } from '../../src/store/store.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { assertFailed, assertOneLineError, closedPort, runHelo } from '../helpers/run-cli.js';
import { ControlledStore } from '../helpers/stores.js';

const BOUNDED = { timeout: 20_000 };

describe('helo send', () => {
  let server: HeloServer | null = null;

  async function start(store: Store = new MemoryStore()): Promise<number> {
    server = await startServer({ port: 0, store, logLevel: 'silent' });
    return server.port;
  }

  async function stored(store: Store): Promise<{ payload: string; name: string | null }[]> {
    return (await store.read(0, 100_000)).map((record) => ({
      payload: record.payload.toString('latin1'),
      name: record.name,
    }));
  }

  afterEach(async () => {
    await server?.close();
    server = null;
  });

  it('stores one payload per argument, quietly, and exits 0', BOUNDED, async () => {
    const store = new MemoryStore();
    const port = await start(store);
    const result = await runHelo(['send', '--port', String(port), 'a', 'b c', '']);
    assert.deepEqual(result, { status: 0, stdout: '', stderr: '' });
    assert.deepEqual(await stored(store), [
      { payload: 'a', name: null },
      { payload: 'b c', name: null },
      { payload: '', name: null },
    ]);
  });

  it('labels the records with --name', BOUNDED, async () => {
    const store = new MemoryStore();
    const port = await start(store);
    const result = await runHelo(['send', '--port', String(port), '--name', 'lab 1', 'x']);
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(await stored(store), [{ payload: 'x', name: 'lab 1' }]);
  });

  it('sends a first argument with a scheme helo does not speak as a payload', BOUNDED, async () => {
    const store = new MemoryStore();
    const port = await start(store);
    const result = await runHelo(['send', '--port', String(port), 'https://example.com/']);
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(await stored(store), [{ payload: 'https://example.com/', name: null }]);
  });

  it('takes the address from a tcp:// first argument', BOUNDED, async () => {
    const store = new MemoryStore();
    const port = await start(store);
    const result = await runHelo([
      'send',
      `tcp://127.0.0.1:${port}`,
      'only',
      'tcp://not-an-address',
    ]);
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(
      (await stored(store)).map((record) => record.payload),
      ['only', 'tcp://not-an-address'],
    );
  });

  it('stores one payload per stdin line when given no payload argument', BOUNDED, async () => {
    const store = new MemoryStore();
    const port = await start(store);
    const input = Buffer.concat([
      Buffer.from('first\nsecond\r\n\nDATA\nQUIT\n'),
      Buffer.from([0x00, 0xff, 0x0d, 0x0d, 0x0a]),
      Buffer.from('last without LF'),
    ]);
    const result = await runHelo(['send', '--port', String(port)], { input });
    assert.deepEqual(result, { status: 0, stdout: '', stderr: '' });
    assert.deepEqual(
      (await stored(store)).map((record) => record.payload),
      ['first', 'second', '', 'DATA', 'QUIT', '\x00\xff\r', 'last without LF'],
    );
  });

  it('pipelines a long stdin', BOUNDED, async () => {
    const store = new MemoryStore();
    const port = await start(store);
    const lines = Array.from({ length: 5000 }, (_, i) => `line ${i}`);
    const result = await runHelo(['send', '--port', String(port)], {
      input: `${lines.join('\n')}\n`,
    });
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(
      (await stored(store)).map((record) => record.payload),
      lines,
    );
  });

  it('exits 1 naming the payload that was not stored', BOUNDED, async () => {
    const store = new ControlledStore();
    store.isFailing = true;
    const port = await start(store);
    const result = await runHelo(['send', '--port', String(port), 'lost']);
    assertFailed(
      result,
      1,
      'helo send: payload 1 was not stored: server replied 500 FAIL (0 payloads stored)',
    );
  });

  it('exits 1 in one line when the server is unreachable', BOUNDED, async () => {
    const port = await closedPort();
    const result = await runHelo(['send', '--port', String(port), 'a']);
    assertFailed(
      result,
      1,
      `helo send: connection refused at 127.0.0.1:${port} — is the server running?`,
    );
  });

  for (const args of [
    ['--port', 'abc', 'a'],
    ['--bogus', 'a'],
    ['two\nlines'],
    ['--name', '', 'a'],
    ['ws://127.0.0.1:1/', 'a', '--bogus'],
  ]) {
    it(`exits 2 with one line for ${JSON.stringify(args)}`, BOUNDED, async () => {
      const result = await runHelo(['send', '--port', '1', ...args]);
      assert.equal(result.status, 2);
      assertOneLineError(result.stderr, /^helo send: /);
    });
  }

  it('reports a UDP port nobody listens on in one line, exit 1', BOUNDED, async () => {
    const result = await runHelo(['send', 'udp://127.0.0.1:1', 'a']);
    assertFailed(result, 1, /nothing is listening at udp:\/\/127\.0\.0\.1:1/);
  });
});
