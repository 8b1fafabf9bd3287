/**
 * A client that pipelines without reading must not grow the server's memory:
 * the server stops reading from it while its unsent replies are above the
 * high-water mark, and every reply still arrives, in order, once it reads.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { after, describe, it } from 'node:test';
import { startServer, type HeloServer } from '../../src/server/server.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { delay } from '../helpers/raw-client.js';

const REQUESTS = 200_000;

describe('backpressure', () => {
  const servers: HeloServer[] = [];
  after(async () => {
    for (const server of servers) await server.close();
  });

  it('keeps memory bounded for 200,000 pipelined HELO from a client that does not read', async () => {
    const highWaterMarkBytes = 64 * 1024;
    const server = await startServer({
      port: 0,
      store: new MemoryStore(),
      logLevel: 'silent',
      highWaterMarkBytes,
    });
    servers.push(server);
    const socket = connect({ port: server.port, host: '127.0.0.1' });
    await once(socket, 'connect');
    socket.pause(); // the client reads nothing for now

    let peakBuffered = 0;
    let wasPaused = false;
    const sample = (): void => {
      for (const connection of server.connections) {
        peakBuffered = Math.max(peakBuffered, connection.bufferedBytes);
        wasPaused ||= connection.isPaused;
      }
    };
    const sampler = setInterval(sample, 2);

    socket.write('HELO\r\n'.repeat(REQUESTS));
    // Loopback sockets buffer tens of MB in the kernel (tcp_rmem), more than
    // 200,000 replies: keep pipelining empty lines (10 reply bytes for each
    // byte sent) until the server has to stop reading, or give up at 8 MB.
    let emptyLines = 0;
    while (!wasPaused && emptyLines < 8_000_000) {
      socket.write(Buffer.alloc(500_000, 0x0a));
      emptyLines += 500_000;
      await delay(30);
    }
    await delay(300); // a paused server must stay bounded while it waits
    clearInterval(sampler);
    sample();
    assert.ok(wasPaused, 'the server should stop reading from a client that does not read');
    // One read (at most 64 KiB of requests) can add replies beyond the mark.
    assert.ok(
      peakBuffered <= highWaterMarkBytes + 10 * 64 * 1024,
      `the server buffered ${peakBuffered} bytes for one client`,
    );

    // Now read everything: every reply arrives, in order.
    socket.write('QUIT\r\n');
    const chunks: Buffer[] = [];
    socket.on('data', (chunk: Buffer) => chunks.push(chunk));
    socket.resume();
    await once(socket, 'end');
    const replies = Buffer.concat(chunks).toString('latin1');
    const expected =
      '100 OK\r\n'.repeat(REQUESTS) + '400 BCMD\r\n'.repeat(emptyLines) + '200 BYE\r\n';
    assert.equal(replies.length, expected.length);
    assert.ok(replies === expected, 'replies out of order');
    socket.destroy();
  });

  it('disconnects a client that stops reading for the slow-reader timeout', async () => {
    const server = await startServer({
      port: 0,
      store: new MemoryStore(),
      logLevel: 'silent',
      highWaterMarkBytes: 1024,
      slowReaderTimeoutMs: 300,
    });
    servers.push(server);
    const socket = connect({ port: server.port, host: '127.0.0.1' });
    socket.on('error', () => {});
    await once(socket, 'connect');
    socket.pause();
    // Empty lines: 10 reply bytes for each byte sent, enough to fill the kernel's buffers.
    for (let i = 0; i < 8; i++) socket.write(Buffer.alloc(1_000_000, 0x0a));
    // (events.once would reject on the reset this causes)
    const closed = new Promise((resolve) => socket.once('close', resolve));
    const startedAt = Date.now();
    await Promise.race([closed, delay(5_000)]);
    assert.equal(socket.destroyed, true, 'the server should have disconnected the slow reader');
    assert.ok(Date.now() - startedAt < 5_000);
    await delay(20);
    assert.equal(server.connections.size, 0);
  });
});
