/**
 * A SIGTERM must not reset connections the kernel had already accepted.
 * Behind a load balancer (deploy/haproxy/) a server keeps getting clients
 * until its health check fails; a connection that completed its handshake
 * in the kernel while the event loop was busy sits in the listener's
 * queue, and closing the listener resets it (the balancer has forwarded the
 * client's session by then and cannot retry it elsewhere). The server takes
 * what is queued before it closes its listeners, and answers what those
 * clients sent (docs/RELIABILITY.md: the requests already received are
 * answered). Found by test/deploy/haproxy.test.ts's rolling restart.
 *
 * Made deterministic with `--work-cpu-ms 10`: 30 pipelined requests keep
 * the event loop busy for 300 ms in one go; meanwhile the SIGTERM arrives
 * first and the clients connect after it, so the loop sees the signal
 * before the queued connections. (Their own requests cost 20 ms, well
 * within the moment a just-accepted connection gets to send its first
 * bytes at shutdown, connection.ts.)
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { startServerProcess } from '../../support/server-process.js';

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Connects, sends `bytes` at once, resolves with everything received and how it ended. */
async function oneShot(port: number, bytes: string): Promise<{ text: string; end: string }> {
  const socket = connect({ port, host: '127.0.0.1' });
  await once(socket, 'connect');
  socket.write(bytes, 'latin1');
  let text = '';
  socket.setEncoding('latin1').on('data', (chunk: string) => (text += chunk));
  const end = await new Promise<string>((resolve) => {
    socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
    socket.on('end', () => resolve('FIN'));
  });
  socket.destroy();
  return { text, end };
}

const PROXY_V1 = (port: number) => `PROXY TCP4 192.0.2.7 127.0.0.1 ${port} 7777\r\n`;

for (const proxy of [false, true]) {
  describe(`SIGTERM with connections in the accept queue${proxy ? ' (--proxy-protocol)' : ''}`, () => {
    it('answers the queued clients instead of resetting them', { timeout: 30_000 }, async () => {
      const server = startServerProcess([
        '--store',
        'memory:',
        '--work-cpu-ms',
        '10',
        ...(proxy ? ['--proxy-protocol'] : []),
      ]);
      try {
        const port = await server.listening;
        const header = (n: number) => (proxy ? PROXY_V1(40000 + n) : '');
        // 30 requests in one chunk keep the server's event loop busy for 300 ms.
        const busy = oneShot(port, `${header(0)}${'HELO busy\r\n'.repeat(30)}`);
        await delay(100);
        server.child.kill('SIGTERM');
        await delay(20);
        // Handshakes done by the kernel while the loop is busy: queued, not yet accepted.
        const queued = await Promise.all(
          [1, 2].map((n) => oneShot(port, `${header(n)}HELO q${n}\r\nQUIT\r\n`)),
        );
        await busy;
        const [code] = (await once(server.child, 'exit')) as [number | null];
        assert.equal(code, 0);
        for (const outcome of queued) {
          assert.deepEqual(outcome, { text: '100 OK\r\n200 BYE\r\n', end: 'FIN' });
        }
      } finally {
        await server.stop('SIGKILL');
      }
    });
  });
}

describe('SIGTERM while a PROXY header is being read', () => {
  it('lets the header finish and answers the session behind it', { timeout: 30_000 }, async () => {
    const server = startServerProcess(['--store', 'memory:', '--proxy-protocol']);
    try {
      const port = await server.listening;
      const socket = connect({ port, host: '127.0.0.1' });
      await once(socket, 'connect');
      let text = '';
      socket.setEncoding('latin1').on('data', (chunk: string) => (text += chunk));
      const ended = new Promise<string>((resolve) => {
        socket.on('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? 'error'));
        socket.on('end', () => resolve('FIN'));
      });
      // A balancer's header split across two segments, the SIGTERM between them.
      const header = PROXY_V1(40001);
      socket.write(header.slice(0, 10));
      await delay(100);
      server.child.kill('SIGTERM');
      await delay(30);
      socket.write(`${header.slice(10)}HELO late\r\nQUIT\r\n`);
      assert.equal(await ended, 'FIN');
      socket.destroy();
      assert.equal(text, '100 OK\r\n200 BYE\r\n');
      const [code] = (await once(server.child, 'exit')) as [number | null];
      assert.equal(code, 0);
    } finally {
      await server.stop('SIGKILL');
    }
  });
});
