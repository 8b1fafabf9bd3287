/**
 * The concurrency models (`--mode`), each doing what the lab says it does:
 * sequential queues, fork runs a process per connection, cluster shares
 * the listener between workers and replaces one that dies; and every mode
 * keeps the server-wide limits and leaves no process behind on SIGTERM.
 * (The protocol itself is checked in every mode by tcp-vectors.test.ts.)
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import type { ClusterServer } from '../../src/server/cluster/cluster-server.js';
import type { ForkServer } from '../../src/server/fork/fork-server.js';
import type { ServerMode } from '../../src/server/options.js';
import { ThreadsServer } from '../../src/server/threads/threads-server.js';
import { runServer } from '../../src/server/run-server.js';
import {
  startServer,
  type HeloServer,
  type RunningServer,
  type StartServerOptions,
} from '../../src/server/server.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import type { Store } from '../../src/store/store.js';
import { childPids, processGroupMembers, remotePortsOf, waitFor } from '../helpers/processes.js';
import { delay, RawClient } from '../helpers/raw-client.js';
import { spawnServer } from '../../support/server-process.js';

const OK = '100 OK\r\n';
const BUSY = '503 BUSY\r\n';
const DRCV = '300 DRCV\r\n';

/** Servers and clients a test opened, closed after it whatever happened. */
const opened: { servers: RunningServer[]; clients: RawClient[]; stores: Store[] } = {
  servers: [],
  clients: [],
  stores: [],
};

afterEach(async () => {
  for (const client of opened.clients.splice(0)) client.close();
  for (const server of opened.servers.splice(0)) await server.close();
  for (const store of opened.stores.splice(0)) await store.close();
});

async function serve<T extends RunningServer = RunningServer>(
  options: Partial<StartServerOptions>,
): Promise<T> {
  const store = options.store ?? new MemoryStore();
  const server = await runServer({ port: 0, logLevel: 'silent', workers: 2, ...options, store });
  opened.servers.push(server);
  if (options.store === undefined) opened.stores.push(store);
  return server as T;
}

async function client(port: number): Promise<RawClient> {
  const raw = await RawClient.open(port);
  opened.clients.push(raw);
  return raw;
}

/** Connects, says HELO and waits for its reply. */
async function greeted(port: number): Promise<RawClient> {
  const raw = await client(port);
  raw.write('HELO\r\n');
  await raw.until(() => raw.text.length >= OK.length, 10_000, 'a reply to HELO');
  return raw;
}

describe('sequential mode', () => {
  const sequentialServer = (): Promise<HeloServer> =>
    startServer({ port: 0, logLevel: 'silent', mode: 'sequential', store: new MemoryStore() });

  it('serves one client at a time: a second client gets no reply until the first quits', async () => {
    const server = await sequentialServer();
    opened.servers.push(server);
    const first = await greeted(server.port);
    const second = await client(server.port);
    second.write('HELO second\r\n');
    await delay(300);
    assert.equal(second.text, '', 'the waiting client is connected but not answered');
    assert.equal(server.stats.waiting, 1);
    first.write('QUIT\r\n');
    await second.untilBytes(OK.length);
    assert.equal(second.text, OK);
    assert.equal(server.stats.waiting, 0);
  });

  it('serves waiting clients in arrival order, skipping those who gave up', async () => {
    const server = await sequentialServer();
    opened.servers.push(server);
    const first = await greeted(server.port);
    const quitter = await client(server.port);
    const second = await client(server.port);
    const third = await client(server.port);
    second.write('HELO\r\n');
    third.write('HELO\r\n');
    await waitFor(
      () => server.stats.waiting,
      (n) => n === 3,
      5_000,
      'three waiting clients',
    );
    // A waiting socket is not read, so its FIN is seen when its turn comes
    // (as with a server that has not accepted it yet): it is passed over.
    quitter.close();
    first.write('QUIT\r\n');
    await second.untilBytes(OK.length);
    await delay(100);
    assert.equal(third.text, '', 'the third waits for the second');
    second.write('QUIT\r\n');
    await third.untilBytes(OK.length);
    assert.equal(third.text, OK);
  });

  it('answers 503 BUSY to waiting clients on shutdown', async () => {
    const server = await sequentialServer();
    const first = await greeted(server.port);
    const waiting = await client(server.port);
    await waitFor(
      () => server.stats.waiting,
      (n) => n === 1,
      5_000,
      'a waiting client',
    );
    await server.close();
    await waiting.untilEnded();
    assert.equal(waiting.text, BUSY);
    await first.untilEnded();
    assert.equal(first.text, OK + BUSY);
  });
});

describe('fork mode', () => {
  it('serves each connection in its own child process', async () => {
    const server = await serve<ForkServer>({ mode: 'fork' });
    for (let i = 0; i < 3; i++) await greeted(server.port);
    const pids = server.childPids;
    assert.equal(pids.length, 3);
    assert.equal(new Set(pids).size, 3);
    assert.deepEqual(
      childPids(process.pid)
        .filter((pid) => pids.includes(pid))
        .sort(),
      [...pids].sort(),
    );
  });

  it('reaps a child when its session ends', async () => {
    const server = await serve<ForkServer>({ mode: 'fork' });
    const raw = await greeted(server.port);
    const [pid] = server.childPids;
    raw.write('QUIT\r\n');
    await raw.untilEnded();
    await waitFor(
      () => childPids(process.pid),
      (pids) => !pids.includes(pid!),
      5_000,
      'the child to exit',
    );
    // The child is gone from /proc a moment before the parent handles its exit.
    await waitFor(
      () => server.stats.connectionsCurrent,
      (n) => n === 0,
      5_000,
      'the parent to count the child out',
    );
  });

  it('a crashing child takes only its own client with it', async () => {
    const server = await serve<ForkServer>({ mode: 'fork' });
    const victim = await greeted(server.port);
    const [victimPid] = server.childPids;
    const bystander = await greeted(server.port);
    process.kill(victimPid!, 'SIGKILL');
    await victim.untilEnded();
    bystander.write('DATA still here\r\n');
    await bystander.untilBytes((OK + '300 DRCV\r\n').length);
    assert.equal(bystander.text, OK + '300 DRCV\r\n');
    const newcomer = await greeted(server.port);
    assert.equal(newcomer.text, OK);
    await waitFor(
      () => server.stats.connectionsCurrent,
      (n) => n === 2,
      5_000,
      'the dead child reaped',
    );
  });

  it('counts its children against --max-connections', async () => {
    const server = await serve<ForkServer>({ mode: 'fork', maxConnections: 2 });
    await greeted(server.port);
    await greeted(server.port);
    const refused = await client(server.port);
    await refused.untilEnded();
    assert.equal(refused.text, BUSY);
    assert.equal(server.stats.rejected['max-connections'], 1);
  });
});

describe('cluster mode', () => {
  it('keeps --max-connections server-wide, across workers', async () => {
    const server = await serve<ClusterServer>({ mode: 'cluster', maxConnections: 3 });
    const served = [];
    for (let i = 0; i < 3; i++) served.push(await greeted(server.port));
    for (let i = 0; i < 4; i++) {
      const refused = await client(server.port);
      await refused.untilEnded();
      assert.equal(refused.text, BUSY, `connection ${4 + i} is refused`);
    }
    served[0]!.write('QUIT\r\n');
    await served[0]!.untilEnded();
    // The freed slot may have to travel back to the primary first.
    const newcomer = await waitForServed(server.port);
    assert.equal(newcomer.text, OK);
  });

  it('keeps --max-connections-per-ip across workers', async () => {
    const server = await serve<ClusterServer>({ mode: 'cluster', maxConnectionsPerIp: 2 });
    await greeted(server.port);
    await greeted(server.port);
    const refused = await client(server.port);
    await refused.untilEnded();
    assert.equal(refused.text, BUSY);
  });

  it('replaces a worker that dies, and keeps serving', async () => {
    const server = await serve<ClusterServer>({ mode: 'cluster' });
    const [victim, survivor] = server.workerPids;
    process.kill(victim!, 'SIGKILL');
    const pids = await waitFor(
      () => server.workerPids,
      (now) => now.length === 2 && !now.includes(victim!),
      10_000,
      'a replacement worker',
    );
    assert.ok(pids.includes(survivor!));
    assert.equal(server.workersReplaced, 1);
    for (let i = 0; i < 4; i++) assert.equal((await waitForServed(server.port)).text, OK);
  });

  it('a dying worker takes only its own clients: those of the other worker go on', async () => {
    const server = await serve<ClusterServer>({ mode: 'cluster' });
    const [victim, survivor] = server.workerPids as [number, number];
    // The kernel picks the worker of each connection: connect until both have clients.
    const clients: RawClient[] = [];
    let onVictim: RawClient[] = [];
    let onSurvivor: RawClient[] = [];
    while (clients.length < 200 && (onVictim.length === 0 || onSurvivor.length === 0)) {
      clients.push(await greeted(server.port));
      const victimPorts = remotePortsOf(victim);
      const survivorPorts = remotePortsOf(survivor);
      onVictim = clients.filter((c) => victimPorts.has(c.socket.localPort!));
      onSurvivor = clients.filter((c) => survivorPorts.has(c.socket.localPort!));
    }
    assert.ok(onVictim.length > 0 && onSurvivor.length > 0, 'both workers hold clients');
    process.kill(victim, 'SIGKILL');
    for (const gone of onVictim) await gone.untilEnded();
    for (const alive of onSurvivor) {
      const before = alive.text.length;
      alive.write('DATA still here\r\n');
      await alive.until(() => alive.text.length > before);
      assert.equal(alive.text.slice(before), '300 DRCV\r\n');
      assert.equal(alive.isEnded, false);
    }
  });

  it('stores every worker payload in one SQLite file without a 500 FAIL', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'helo-cluster-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const store = SqliteStore.open(join(dir, 'helo.db'));
    opened.stores.push(store);
    const server = await serve<ClusterServer>({ mode: 'cluster', store });
    const clients = await Promise.all(Array.from({ length: 20 }, () => client(server.port)));
    const perClient = 25;
    for (const [i, raw] of clients.entries()) {
      raw.write(Array.from({ length: perClient }, (_, j) => `DATA ${i}-${j}\r\n`).join(''));
    }
    const drcv = '300 DRCV\r\n';
    await Promise.all(clients.map((raw) => raw.untilBytes(drcv.length * perClient, 20_000)));
    for (const raw of clients) assert.equal(raw.text, drcv.repeat(perClient));
    const payloads = (await store.read(0, 10_000)).map((record) => record.payload.toString());
    assert.equal(payloads.length, clients.length * perClient);
    assert.equal(new Set(payloads).size, payloads.length, 'no duplicates');
  });
});

/** Connects until a connection is served (a refused one gets 503 BUSY and is retried). */
async function waitForServed(port: number): Promise<RawClient> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    const raw = await client(port);
    raw.write('HELO\r\n');
    await raw.until(() => raw.text.length >= OK.length || raw.isEnded, 5_000, 'a reply');
    if (raw.text === OK || Date.now() > deadline) return raw;
    await delay(50);
  }
}

describe('simulated work', () => {
  it('--work-ms delays each reply without blocking the other clients', async () => {
    const server = await serve({ mode: 'event-loop', workMs: 300 });
    const clients = await Promise.all(Array.from({ length: 5 }, () => client(server.port)));
    const started = performance.now();
    for (const raw of clients) raw.write('HELO\r\n');
    const times = await Promise.all(
      clients.map(async (raw) => {
        await raw.untilBytes(OK.length);
        return performance.now() - started;
      }),
    );
    for (const ms of times) assert.ok(ms >= 290, `each reply waits its 300 ms (took ${ms})`);
    // Serialized, five waits would take 1500 ms.
    assert.ok(
      Math.max(...times) < 1_200,
      `the waits overlap (last after ${Math.max(...times)} ms)`,
    );
  });

  it('--work-cpu-ms keeps the one event loop busy: clients wait for each other', async () => {
    const server = await serve({ mode: 'event-loop', workCpuMs: 150 });
    const clients = await Promise.all(Array.from({ length: 3 }, () => client(server.port)));
    const started = performance.now();
    for (const raw of clients) raw.write('HELO\r\n');
    await Promise.all(clients.map((raw) => raw.untilBytes(OK.length)));
    const elapsed = performance.now() - started;
    assert.ok(
      elapsed >= 440,
      `three 150 ms computations in one process take >= 450 ms (${elapsed})`,
    );
  });
});

describe('threads mode', () => {
  it('--work-cpu-ms runs on the threads: two threads do four 300 ms computations in two rounds', async () => {
    const server = await serve({ mode: 'threads', threads: 2, workCpuMs: 300 });
    const clients = await Promise.all(Array.from({ length: 4 }, () => client(server.port)));
    const started = performance.now();
    for (const raw of clients) raw.write('HELO\r\nDATA x\r\n');
    await Promise.all(clients.map((raw) => raw.untilBytes((OK + DRCV).length, 10_000)));
    const elapsed = performance.now() - started;
    for (const raw of clients) assert.equal(raw.text, OK + DRCV, 'in request order');
    // One event loop would take 8 x 300 ms; two threads, 4 x 300 ms.
    assert.ok(elapsed >= 1_150, `eight computations on two threads take >= 1200 ms (${elapsed})`);
    assert.ok(elapsed < 2_000, `the threads work side by side (${elapsed} ms, alone: 2400)`);
  });

  it('a graceful stop answers the requests on the threads before 503 BUSY', async () => {
    const server = await serve({ mode: 'threads', threads: 2, workCpuMs: 400 });
    const raw = await client(server.port);
    raw.write('HELO a\r\nHELO b\r\n');
    // Both requests are read and on the threads (400 ms each, side by side) when the stop begins.
    await delay(150);
    const started = performance.now();
    await server.close();
    await raw.untilEnded(5_000);
    assert.equal(raw.text, OK + OK + BUSY, 'both answered by their threads, then told to go');
    const waited = performance.now() - started;
    assert.ok(waited >= 150, `the stop waited for the threads (${waited} ms)`);
  });

  it('a thread that throws is replaced; its client is closed, the others are answered', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'helo-threads-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const marker = join(dir, 'crash-marker');
    writeFileSync(marker, '');
    process.env.HELO_TEST_CRASH_MARKER = marker;
    const program = new URL('../helpers/crashing-work-thread.js', import.meta.url);
    const store = new MemoryStore();
    opened.stores.push(store);
    const server = new ThreadsServer(
      { port: 0, logLevel: 'silent', store, threads: 2, workCpuMs: 100 },
      program,
    );
    opened.servers.push(server);
    await server.listen();
    delete process.env.HELO_TEST_CRASH_MARKER;
    const clients = await Promise.all(Array.from({ length: 2 }, () => client(server.port)));
    for (const raw of clients) raw.write('HELO\r\n');
    await Promise.all(
      clients.map((raw) =>
        raw.until(() => raw.text === OK || raw.isEnded, 5_000, 'a reply or a close'),
      ),
    );
    assert.equal(existsSync(marker), false, 'one thread took the poisoned job');
    const outcomes = clients.map((raw) =>
      raw.text === OK ? 'answered' : raw.isEnded ? 'closed' : 'hung',
    );
    assert.deepEqual(outcomes.sort(), ['answered', 'closed']);
    assert.equal(
      clients.find((raw) => raw.isEnded)!.text,
      '',
      'the crashed job got no false reply',
    );
    await waitFor(
      () => server.threadsReplaced,
      (replaced) => replaced === 1,
      5_000,
      'the dead thread to be replaced',
    );
    // Both threads serve again: two computations side by side, both answered.
    const later = await Promise.all(Array.from({ length: 2 }, () => client(server.port)));
    for (const raw of later) raw.write('HELO\r\nQUIT\r\n');
    for (const raw of later) {
      await raw.untilEnded(5_000);
      assert.equal(raw.text, OK + '200 BYE\r\n');
    }
  });
});

describe('SIGTERM leaves no process behind', () => {
  const modes: ServerMode[] = ['event-loop', 'sequential', 'fork', 'cluster', 'threads'];
  for (const mode of modes) {
    for (const target of ['group', 'process'] as const) {
      it(`${mode} mode, signal sent to the ${target}`, async () => {
        const server = await spawnServer(
          ['--store', 'memory:', '--mode', mode, '--workers', '2', '--threads', '2'],
          { detached: true },
        );
        const pid = server.child.pid!;
        try {
          const idle = await greeted(server.port);
          const startedAt = Date.now();
          process.kill(target === 'group' ? -pid : pid, 'SIGTERM');
          await idle.untilEnded(10_000);
          assert.equal(idle.text, OK + BUSY, 'an idle session is told 503 BUSY');
          const code = await server.stop();
          assert.equal(code, 0);
          assert.ok(Date.now() - startedAt < 10_000, 'gone within 10 s');
          await waitFor(
            () => processGroupMembers(pid),
            (left) => left.length === 0,
            5_000,
            'an empty process group',
          );
        } finally {
          for (const member of processGroupMembers(pid)) process.kill(member, 'SIGKILL');
        }
      });
    }
  }
});
