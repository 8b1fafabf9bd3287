/**
 * Slowloris against the real server (issue 6): hundreds of connections that
 * dribble bytes and never finish a line must not starve a normal client,
 * and must not keep their connections either. A line is what keeps a
 * connection alive (protocol.md §4: `408 TOUT` after the idle timeout
 * without a complete line), so a byte now and then buys nothing: each
 * dribbler is answered `408 TOUT` and closed one idle timeout after it
 * connected, however busily it dribbles. A fast one that passes the line
 * limit gets `401 LONG` at once (§2), and then the same `408 TOUT`.
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { delay, RawClient } from '../helpers/raw-client.js';
import { spawnServer, type ServerProcess } from '../../support/server-process.js';

const IDLE_TIMEOUT_S = 2;
const DRIBBLERS = 200;
const SLOW_HELOS = 100;
const FLOODERS = 10;
/** Correctness, not speed: a normal session must not wait behind the slow ones. */
const SESSION_BOUND_MS = 2_000;
/** How late after its idle timeout a slow connection may still be closed, on a busy machine. */
const CLOSE_SLACK_MS = 3_000;

/** One hostile connection and what it saw. */
class SlowClient {
  readonly socket: Socket;
  received = '';
  connectedAt = 0;
  closedAt = 0;
  #timer: NodeJS.Timeout | null = null;
  readonly closed: Promise<void>;

  constructor(port: number) {
    this.socket = connect({ port, host: '127.0.0.1', noDelay: true });
    this.socket.setEncoding('latin1');
    this.socket.on('data', (text: string) => (this.received += text));
    // The server ends the connection while the client may still be writing.
    this.socket.on('error', () => {});
    this.socket.on('end', () => this.stop());
    this.closed = new Promise((resolve) =>
      this.socket.once('close', () => {
        this.closedAt = performance.now();
        this.stop();
        resolve();
      }),
    );
  }

  async connected(): Promise<void> {
    await new Promise<void>((resolve, reject) => {
      this.socket.once('connect', resolve);
      this.socket.once('error', reject);
    });
    this.connectedAt = performance.now();
  }

  /** Writes `next()` every `minMs`–`maxMs`, never a LF; stops when `next` returns null. */
  dribble(next: () => string | null, minMs: number, maxMs: number): void {
    const tick = (): void => {
      const bytes = next();
      if (bytes === null || !this.socket.writable) return;
      this.socket.write(bytes);
      this.#timer = setTimeout(tick, minMs + Math.random() * (maxMs - minMs));
    };
    this.#timer = setTimeout(tick, Math.random() * minMs);
  }

  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = null;
    // Closing our side too lets the server's connection go at once (no linger).
    if (!this.socket.destroyed) this.socket.end();
  }
}

/** HELO, DATA + payload, QUIT, each reply awaited; returns the milliseconds it took. */
async function normalSession(port: number, index: number): Promise<number> {
  const startedAt = performance.now();
  const client = await RawClient.open(port);
  try {
    client.write('HELO normal\r\n');
    await client.untilBytes('100 OK\r\n'.length, SESSION_BOUND_MS * 2);
    client.write(`DATA\r\nnormal payload ${index}\r\n`);
    await client.untilBytes('100 OK\r\n300 DRCV\r\n'.length, SESSION_BOUND_MS * 2);
    client.write('QUIT\r\n');
    await client.untilEnded(SESSION_BOUND_MS * 2);
    assert.equal(client.text, '100 OK\r\n300 DRCV\r\n200 BYE\r\n');
  } finally {
    client.close();
  }
  return performance.now() - startedAt;
}

describe('slowloris', () => {
  let server: ServerProcess;
  const slowClients: SlowClient[] = [];

  before(async () => {
    server = await spawnServer([
      '--store',
      'memory:',
      '--idle-timeout',
      String(IDLE_TIMEOUT_S),
      '--log-level',
      'info',
    ]);
  });

  after(async () => {
    for (const client of slowClients) client.socket.destroy();
    await server.stop();
  });

  it('does not starve normal clients, and cuts every dribbler off with 408 TOUT', async () => {
    const open = async (count: number): Promise<SlowClient[]> => {
      const opened = Array.from({ length: count }, () => new SlowClient(server.port));
      await Promise.all(opened.map((client) => client.connected()));
      slowClients.push(...opened);
      return opened;
    };
    // An endless line, a byte every 200–500 ms.
    const dribblers = await open(DRIBBLERS);
    for (const client of dribblers) client.dribble(() => 'x', 200, 500);
    // A HELO sent a letter at a time, its LF never.
    const slowHelos = await open(SLOW_HELOS);
    for (const client of slowHelos) {
      let sent = 0;
      client.dribble(() => (sent < 4 ? 'HELO'[sent++]! : null), 200, 500);
    }
    // An endless line at speed: past the line limit (8192) within a few ticks.
    const flooders = await open(FLOODERS);
    for (const client of flooders) client.dribble(() => 'y'.repeat(4096), 20, 50);

    // Normal sessions, one after another, until every slow client is gone.
    const allClosed = Promise.all(slowClients.map((client) => client.closed));
    let isDone = false;
    void allClosed.then(() => (isDone = true));
    const sessionTimes: number[] = [];
    const deadline = performance.now() + IDLE_TIMEOUT_S * 1000 + CLOSE_SLACK_MS;
    while (!isDone && performance.now() < deadline) {
      sessionTimes.push(await normalSession(server.port, sessionTimes.length));
      await delay(20);
    }
    // And the server still serves once they are gone.
    sessionTimes.push(await normalSession(server.port, sessionTimes.length));

    assert.ok(isDone, 'every slow connection should have been closed by now');
    assert.ok(sessionTimes.length >= 5, `only ${sessionTimes.length} normal sessions ran`);
    const slowest = Math.max(...sessionTimes);
    assert.ok(slowest < SESSION_BOUND_MS, `a normal session took ${slowest.toFixed(0)} ms`);

    for (const client of [...dribblers, ...slowHelos]) {
      assert.equal(client.received, '408 TOUT\r\n');
    }
    for (const client of flooders) {
      assert.equal(client.received, '401 LONG\r\n408 TOUT\r\n');
    }
    // Dribbling did not buy time, and nothing was cut before its timeout.
    for (const client of slowClients) {
      const lifetime = client.closedAt - client.connectedAt;
      assert.ok(
        lifetime >= IDLE_TIMEOUT_S * 1000 - 100 &&
          lifetime < IDLE_TIMEOUT_S * 1000 + CLOSE_SLACK_MS,
        `a slow connection lived ${lifetime.toFixed(0)} ms with --idle-timeout ${IDLE_TIMEOUT_S}`,
      );
    }

    // Each was counted and logged as an idle timeout (one JSON line per session).
    await delay(300); // the logs are written asynchronously
    const closedForIdleness = server
      .stderr()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg?: string; reason?: string })
      .filter((entry) => entry.msg === 'session closed' && entry.reason === 'idle-timeout');
    assert.equal(closedForIdleness.length, slowClients.length);
  });
});
