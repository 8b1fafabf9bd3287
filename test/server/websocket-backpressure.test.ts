/**
 * Backpressure over WebSocket, on the real `helo server` process: a
 * WebSocket client that pipelines without reading is paused and then cut
 * off by --slow-reader-timeout, as a TCP one is (limits.test.ts), and a
 * WebSocket waiting its turn in sequential mode is not read meanwhile. The
 * server's resident memory is sampled from /proc while the client floods.
 */
import assert from 'node:assert/strict';
import { afterEach, describe, it } from 'node:test';
import { readRss } from '../../support/process-rss.js';
import { delay, RawClient } from '../helpers/raw-client.js';
import { RawWebSocket, textFrames } from '../../support/raw-websocket.js';
import { spawnServer, type ServerProcess } from '../../support/server-process.js';

const MiB = 1024 * 1024;
/** What a flood may add to the server's memory: far less than the flood itself. */
const MAX_GROWTH = 64 * MiB;
/** 10,000 `HELO` messages, 100 kB: written over and over. */
const HELO_FRAMES_PER_WRITE = 10_000;
const HELO_FRAMES = textFrames('HELO', HELO_FRAMES_PER_WRITE);

/** The `ws://` port, printed after the TCP one. */
async function httpPortOf(server: ServerProcess): Promise<number> {
  for (let tries = 0; tries < 100; tries++) {
    const match = /listening on ws:\/\/127\.0\.0\.1:(\d+)\/ws/.exec(server.stdout());
    if (match) return Number(match[1]);
    await delay(20);
  }
  throw new Error(`no ws:// address; stdout: ${server.stdout()}`);
}

/** The highest VmRSS of `pid` seen since `start()`, sampled every 20 ms. */
class RssPeak {
  readonly baseline: number;
  peak: number;
  readonly #timer: NodeJS.Timeout;
  constructor(pid: number) {
    this.baseline = this.peak = readRss(pid);
    this.#timer = setInterval(() => {
      try {
        this.peak = Math.max(this.peak, readRss(pid));
      } catch {
        // The process is gone.
      }
    }, 20);
  }
  get growthMiB(): number {
    return (this.peak - this.baseline) / MiB;
  }
  stop(): void {
    clearInterval(this.#timer);
  }
}

async function metric(httpPort: number, name: string): Promise<number> {
  const text = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
  const match = new RegExp(`^${name} (\\d+)$`, 'm').exec(text);
  if (!match) throw new Error(`no ${name} in /metrics`);
  return Number(match[1]);
}

describe('WebSocket backpressure (server process)', () => {
  let server: ServerProcess | null = null;
  const sockets: { destroy(): void }[] = [];

  afterEach(async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await server?.stop();
    server = null;
  });

  it('pauses a WebSocket client that never reads, keeps memory bounded, cuts it off after --slow-reader-timeout', async (t) => {
    server = await spawnServer([
      '--store',
      'memory:',
      '--http-port',
      '0',
      '--slow-reader-timeout',
      '2',
    ]);
    const httpPort = await httpPortOf(server);
    const client = await RawWebSocket.open(httpPort);
    sockets.push(client.socket);
    const closed = new Promise<number>((resolve) =>
      client.socket.once('close', () => resolve(Date.now())),
    );
    const rss = new RssPeak(server.child.pid!);
    const startedAt = Date.now();
    try {
      // 2,000,000 pipelined HELOs, 20 MB of frames, never a reply read.
      const writes = await Promise.race([
        client.flood(HELO_FRAMES, 2_000_000 / HELO_FRAMES_PER_WRITE),
        delay(15_000).then(() => -1),
      ]);
      assert.notEqual(writes, -1, 'the flood should end: sent, or cut off');
      // Everything sent and not cut off yet: a paused socket notices the
      // server's reset only on a write, so keep writing a little.
      const deadline = Date.now() + 6_000;
      while (!client.socket.destroyed && Date.now() < deadline) {
        client.socket.write(textFrames('HELO', 1));
        await delay(100);
      }
    } finally {
      rss.stop();
    }
    const lastedMs = client.socket.destroyed ? (await closed) - startedAt : NaN;
    t.diagnostic(`server RSS +${rss.growthMiB.toFixed(1)} MiB; cut off after ${lastedMs} ms`);
    assert.equal(client.socket.destroyed, true, 'the server should have cut the client off');
    assert.ok(
      rss.growthMiB < MAX_GROWTH / MiB,
      `server grew by ${rss.growthMiB.toFixed(1)} MiB under the flood`,
    );
    assert.ok(lastedMs >= 2_000, `cut off after ${lastedMs} ms, before the timeout`);
    assert.equal(await metric(httpPort, 'helo_slow_reader_disconnects_total'), 1);
    // Logs are written asynchronously: wait a little for the summary.
    for (
      let tries = 0;
      tries < 100 && !server.stderr().includes('"reason":"slow-reader"');
      tries++
    ) {
      await delay(20);
    }
    assert.match(server.stderr(), /"reason":"slow-reader"/);
  });

  it('keeps a WebSocket client that stops reading and catches up: every reply, in order', async () => {
    server = await spawnServer([
      '--store',
      'memory:',
      '--http-port',
      '0',
      '--slow-reader-timeout',
      '10',
    ]);
    const client = await RawWebSocket.open(await httpPortOf(server));
    sockets.push(client.socket);
    const requests = 500_000; // 5 MB of replies: more than the kernel buffers here
    client.socket.write(textFrames('HELO', requests));
    client.socket.write(textFrames('QUIT', 1));
    await delay(1_000);
    client.socket.resume();
    const deadline = Date.now() + 15_000;
    while (client.messages.length <= requests && Date.now() < deadline) await delay(20);
    assert.equal(client.messages.length, requests + 1);
    assert.equal(client.messages.at(-1), '200 BYE\r\n');
    assert.equal(client.messages.filter((message) => message === '100 OK\r\n').length, requests);
  });

  it('does not read a WebSocket waiting its turn in sequential mode, then serves it in order', async (t) => {
    server = await spawnServer(['--store', 'memory:', '--http-port', '0', '--mode', 'sequential']);
    const httpPort = await httpPortOf(server);
    const first = await RawClient.open(server.port);
    sockets.push(first.socket);
    first.write('HELO\r\n');
    await first.untilBytes('100 OK\r\n'.length);

    const waiting = await RawWebSocket.open(httpPort);
    sockets.push(waiting.socket);
    const rss = new RssPeak(server.child.pid!);
    const requests = 1_000_000;
    // Written without waiting for the kernel: whatever the server does not
    // read waits in this process, as it would in a real client.
    for (let i = 0; i < requests / HELO_FRAMES_PER_WRITE; i++) waiting.socket.write(HELO_FRAMES);
    await delay(2_000);
    rss.stop();
    t.diagnostic(`server RSS +${rss.growthMiB.toFixed(1)} MiB while a WebSocket waited`);
    assert.ok(
      rss.growthMiB < MAX_GROWTH / MiB,
      `server grew by ${rss.growthMiB.toFixed(1)} MiB while a WebSocket waited`,
    );

    // Its turn comes: the replies arrive, in order.
    waiting.socket.resume();
    first.write('QUIT\r\n');
    const deadline = Date.now() + 5_000;
    while (waiting.messages.length < 1_000 && Date.now() < deadline) await delay(20);
    assert.ok(waiting.messages.length >= 1_000, `${waiting.messages.length} replies arrived`);
    assert.deepEqual(new Set(waiting.messages), new Set(['100 OK\r\n']));
  });
});
