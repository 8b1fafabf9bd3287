/**
 * A cluster outlives its workers (docs/RELIABILITY.md): the primary of the
 * real `bin/helo server --mode cluster` replaces workers killed with
 * SIGKILL, right after they start too, on the ports the first ones bound
 * (`--port 0`), gives up with a non-zero status and one line only when
 * workers keep dying during start-up, and a worker survives running out of
 * file descriptors.
 */
import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';
import { afterEach, describe, it } from 'node:test';
import { makeTestPki } from '../helpers/certificates.js';
import { childPids, waitFor } from '../helpers/processes.js';
import { delay, RawClient } from '../helpers/raw-client.js';
import {
  spawnServer,
  startServerProcess,
  type ServerProcess,
} from '../../support/server-process.js';

const OK = '100 OK\r\n';
const CLUSTER = ['--mode', 'cluster', '--store', 'memory:', '--log-level', 'warn'];

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function cluster(args: string[]): Promise<ServerProcess> {
  const server = await spawnServer([...CLUSTER, ...args]);
  cleanups.push(() => server.stop());
  return server;
}

/** Says HELO on a new connection until one is answered `100 OK` (a worker may still be starting). */
async function helo(port: number, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const raw = await RawClient.open(port);
      raw.write('HELO\r\n');
      await raw.until(() => raw.text.length >= OK.length || raw.isEnded, 2_000, 'a reply');
      raw.socket.destroy();
      if (raw.text === OK) return OK;
      last = raw.text;
    } catch (error) {
      last = String(error);
    }
    await delay(100);
  }
  return last;
}

/** The live workers of the primary `pid`, once there are `count` of them outside `excluded`. */
function workersOf(pid: number, count: number, excluded: ReadonlySet<number>): Promise<number[]> {
  return waitFor(
    () => childPids(pid).filter((child) => !excluded.has(child)),
    (pids) => pids.length === count,
    15_000,
    `${count} new workers`,
  );
}

function isAlive(server: ServerProcess): boolean {
  return server.child.exitCode === null && server.child.signalCode === null;
}

describe('a cluster replaces dying workers', () => {
  it('stays up while workers are SIGKILLed right after they start, and serves HELO after', async () => {
    const server = await cluster(['--workers', '2']);
    const killed = new Set<number>();
    // 3 rounds of 2: 6 deaths during start-up, fewer than the 10 that end a cluster.
    for (let round = 0; round < 3; round++) {
      const workers = await workersOf(server.child.pid!, 2, killed);
      for (const pid of workers) {
        process.kill(pid, 'SIGKILL');
        killed.add(pid);
      }
      assert.ok(isAlive(server), `the primary is alive after round ${round + 1}`);
    }
    await workersOf(server.child.pid!, 2, killed);
    assert.equal(await helo(server.port), OK, 'the replacements serve the same port');
    assert.ok(isAlive(server));
    assert.equal(await server.stop(), 0);
  });

  it('--port 0: replacements of all workers listen on the ports the first ones bound', async () => {
    const server = await cluster(['--workers', '2', '--udp-port', '0']);
    const udpLine = await waitFor(
      () => /listening on udp:\/\/127\.0\.0\.1:(\d+)/.exec(server.stdout()),
      Boolean,
      5_000,
      'the UDP address on stdout',
    );
    const udpPort = Number(udpLine![1]);
    const first = await workersOf(server.child.pid!, 2, new Set());
    // Past the young-death backoff: both are replaced at once, so only the ports are tested.
    await delay(2_100);
    for (const pid of first) process.kill(pid, 'SIGKILL');
    await workersOf(server.child.pid!, 2, new Set(first));
    assert.equal(await helo(server.port), OK, 'the TCP port stays');
    assert.equal(await udpHelo(udpPort), OK, 'the UDP port stays');
  });

  it('gives up after 10 workers died during start-up: status 1 and one line naming the cause', async () => {
    const pki = makeTestPki();
    cleanups.push(() => pki.remove());
    const server = await spawnServer([
      ...CLUSTER,
      '--workers',
      '5',
      '--tls-port',
      '0',
      '--tls-cert',
      pki.serverCert,
      '--tls-key',
      pki.serverKey,
    ]);
    cleanups.push(() => server.stop('SIGKILL'));
    const workers = await workersOf(server.child.pid!, 5, new Set());
    // Certificates gone (a botched renewal): every replacement fails to start.
    pki.remove();
    for (const pid of workers) process.kill(pid, 'SIGKILL');
    const [code] = (await Promise.race([
      once(server.child, 'exit'),
      delay(25_000).then(() => [undefined]),
    ])) as [number | null | undefined];
    assert.equal(code, 1, `exit status (stderr: ${server.stderr()})`);
    const plain = server
      .stderr()
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('{'));
    assert.equal(plain.length, 1, `one plain line on stderr: ${JSON.stringify(plain)}`);
    assert.match(plain[0]!, /^helo server: cluster workers died during start-up 10 times in a row/);
    assert.match(plain[0]!, /server\.pem|certificate|tls/i, 'it names the cause');
  });
});

describe('a cluster worker out of file descriptors', () => {
  it('refuses or closes what it cannot serve, keeps running and serves again after', async () => {
    const server = startServerProcess([...CLUSTER, '--workers', '2'], { shell: 'ulimit -n 256' });
    const { child } = server;
    cleanups.push(async () => void (await server.stop()));
    const port = await server.listening;
    const workers = await workersOf(child.pid!, 2, new Set());

    // More than both workers' 256 descriptors together.
    const flood = Array.from({ length: 600 }, () => {
      const socket = createConnectionQuietly(port);
      socket.write('HELO\r\n');
      return socket;
    });
    // Long enough for every worker's once-a-second report to run out of descriptors.
    await delay(2_500);
    for (const socket of flood) socket.destroy();

    assert.equal(await helo(port), OK, 'a new client is served after the flood');
    assert.deepEqual(
      childPids(child.pid!).sort(),
      workers.sort(),
      'no worker died or was replaced',
    );
    assert.equal(
      child.exitCode,
      null,
      `the primary runs (stderr: ${server.stderr().slice(-2000)})`,
    );
  });
});

function createConnectionQuietly(port: number): Socket {
  // Resets and refusals are the expected degradation here.
  return connect(port, '127.0.0.1').on('error', () => {});
}

async function udpHelo(port: number): Promise<string> {
  const socket = createSocket('udp4');
  try {
    for (let attempt = 0; attempt < 20; attempt++) {
      socket.send('HELO\r\n', port, '127.0.0.1');
      const reply = await Promise.race([
        once(socket, 'message').then(([message]) => String(message)),
        delay(500).then(() => null),
      ]);
      if (reply !== null) return reply;
    }
    return 'no reply';
  } finally {
    socket.close();
  }
}
