/**
 * A stopping server that a balancer health-checks keeps its listeners open
 * until `/readyz` has answered 503 and no connection has come for a moment
 * (src/server/balancer-drain.ts): closing at once resets connections the
 * balancer has already sent a client's bytes on (deploy/haproxy/README.md).
 * Real `helo server` processes, real sockets.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { once } from 'node:events';
import type { ServerProcess } from '../../support/server-process.js';
import { spawnWebServer, type WebServer } from '../../support/web-server.js';
import { httpRequest } from '../helpers/http-client.js';
import { RawClient, delay } from '../helpers/raw-client.js';

const SESSION = 'HELO\r\nDATA drained\r\nQUIT\r\n';
const ANSWERS = '100 OK\r\n300 DRCV\r\n200 BYE\r\n';

/** One whole session; its replies, or the connect error's code. */
async function session(port: number): Promise<string> {
  let client: RawClient;
  try {
    client = await RawClient.open(port);
  } catch (error) {
    return (error as NodeJS.ErrnoException).code ?? String(error);
  }
  client.write(SESSION);
  await client.untilEnded();
  return client.text;
}

/** Resolves with the ms until a connect to `port` is refused (polling every 20 ms). */
async function untilRefused(port: number, timeoutMs: number): Promise<number> {
  const started = Date.now();
  while (Date.now() - started < timeoutMs) {
    const socket = connect({ port, host: '127.0.0.1' });
    const outcome = await Promise.race([
      once(socket, 'connect').then(() => 'open'),
      once(socket, 'error').then(([error]) => (error as NodeJS.ErrnoException).code),
    ]).catch((error: NodeJS.ErrnoException) => error.code);
    socket.destroy();
    if (outcome === 'ECONNREFUSED') return Date.now() - started;
    await delay(20);
  }
  throw new Error(`port ${port} still accepts after ${timeoutMs} ms`);
}

/**
 * A server whose /readyz was asked (as a balancer's health check does), sent
 * SIGTERM; resolves 150 ms later, longer than the few turns a shutdown used
 * to take before closing its listener.
 */
async function stopWhileWatched(): Promise<WebServer & { stoppedAt: number }> {
  const web = await spawnWebServer(['--store', 'memory:']);
  const ready = await httpRequest(web.httpPort, '/readyz').catch(() => null);
  if (ready?.status !== 200) {
    await web.server.stop();
    assert.fail(`/readyz answered ${ready?.status ?? 'nothing'} before the stop`);
  }
  const stoppedAt = Date.now();
  web.server.child.kill('SIGTERM');
  await delay(150);
  return { ...web, stoppedAt };
}

/** The server, already sent SIGTERM, exits by itself with status 0 (no second signal). */
async function assertCleanExit(server: ServerProcess): Promise<void> {
  const { child } = server;
  if (child.exitCode === null && child.signalCode === null) await once(child, 'exit');
  assert.equal(
    child.exitCode,
    0,
    `exit ${child.exitCode}, signal ${child.signalCode}; stderr: ${server.stderr().slice(-3000)}`,
  );
}

describe('stopping behind a balancer that checks /readyz', () => {
  it('keeps serving new connections until /readyz has said 503, then closes the listener', async () => {
    const { server, tcpPort, httpPort, stoppedAt } = await stopWhileWatched();
    try {
      // What a balancer keeps sending until its check fails: served whole.
      for (let i = 0; i < 5; i++) {
        assert.equal(await session(tcpPort), ANSWERS, `session ${i} after the SIGTERM`);
        await delay(20);
      }
      const check = await httpRequest(httpPort, '/readyz');
      assert.equal(check.status, 503);
      assert.equal(check.body, 'shutting down\n');
      // Nothing more comes (a connect would count as the balancer still
      // sending): the listener closes a moment later, well before the 2 s
      // that end the wait anyway.
      await delay(500);
      assert.ok(Date.now() - stoppedAt < 1_700, 'checked before the longest wait ends');
      assert.equal(await session(tcpPort), 'ECONNREFUSED');
      await assertCleanExit(server);
    } finally {
      await server.stop();
    }
  });

  it('closes after 2 s at most when the balancer stops asking', async () => {
    const { server, tcpPort, stoppedAt } = await stopWhileWatched();
    try {
      assert.equal(await session(tcpPort), ANSWERS, 'still served before any 503');
      const refusedAt = Date.now() + (await untilRefused(tcpPort, 3_000));
      assert.ok(refusedAt - stoppedAt >= 1_500, `closed ${refusedAt - stoppedAt} ms after SIGTERM`);
      await assertCleanExit(server);
    } finally {
      await server.stop();
    }
  });

  it('closes at once when nothing checks its readiness (a Ctrl-C in the lab)', async () => {
    const { server, tcpPort } = await spawnWebServer(['--store', 'memory:']);
    try {
      assert.equal(await session(tcpPort), ANSWERS);
      server.child.kill('SIGTERM');
      const refusedAfterMs = await untilRefused(tcpPort, 1_500);
      assert.ok(refusedAfterMs < 500, `closed ${refusedAfterMs} ms after SIGTERM`);
      await assertCleanExit(server);
    } finally {
      await server.stop();
    }
  });
});
