/**
 * Every concurrency model keeps the whole contract, checked on the real
 * `helo server` process in each `--mode`: limits that give back the slot of
 * a connection that opens and closes without a byte (a port probe, a load
 * balancer's TCP check), `--max-line` and `--idle-timeout`, and acknowledged
 * payloads that outlive a SIGKILL of the whole process group.
 *
 * The rest of the contract already runs in every mode elsewhere: the
 * protocol vectors (the `--max-line` ones included) in
 * stream-vectors.test.ts, and graceful stop (an idle session told
 * `503 BUSY`, exit 0 within 10 s, an empty process group) in modes.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, describe, it } from 'node:test';
import type { ServerMode } from '../../src/server/options.js';
import { SqliteStore } from '../../src/store/sqlite-store.js';
import { childPids, processGroupMembers, waitFor } from '../helpers/processes.js';
import { delay, RawClient } from '../helpers/raw-client.js';
import { spawnServer, type ServerProcess } from '../../support/server-process.js';

const MODES: readonly ServerMode[] = ['event-loop', 'sequential', 'fork', 'cluster', 'threads'];
const MAX_CONNECTIONS = 5;
const PROBES = 20;

const OK = '100 OK\r\n';
const BYE = '200 BYE\r\n';
const DRCV = '300 DRCV\r\n';
const LONG = '401 LONG\r\n';
const TOUT = '408 TOUT\r\n';

const dir = mkdtempSync(join(tmpdir(), 'helo-mode-contract-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** What a test opened, gone after it whatever happened. */
const opened: { servers: ServerProcess[]; clients: RawClient[] } = { servers: [], clients: [] };

afterEach(() => {
  for (const client of opened.clients.splice(0)) client.close();
  for (const server of opened.servers.splice(0)) {
    for (const member of processGroupMembers(server.child.pid!)) process.kill(member, 'SIGKILL');
  }
});

/** The server in `mode`, leader of its own process group. */
async function serve(mode: ServerMode, args: string[]): Promise<ServerProcess> {
  const server = await spawnServer(
    ['--mode', mode, '--workers', '2', ...threadsArgs(mode), '--log-level', 'warn', ...args],
    { detached: true },
  );
  opened.servers.push(server);
  return server;
}

/** Threads mode with CPU work, so that every request goes through the thread pool. */
function threadsArgs(mode: ServerMode): string[] {
  return mode === 'threads' ? ['--threads', '2', '--work-cpu-ms', '1'] : [];
}

async function client(port: number): Promise<RawClient> {
  const raw = await RawClient.open(port);
  opened.clients.push(raw);
  return raw;
}

type ProbeClose = 'half-close' | 'close' | 'reset';
const PROBE_CLOSES: readonly ProbeClose[] = ['half-close', 'close', 'reset'];

/**
 * Connects and closes without sending a byte: with a FIN (half-close, or a
 * full close as a port scanner does) or a reset, at once or a few ms later.
 * Resolves once the probe is closed on its side; the socket is returned so
 * that a half-closed one can be cleaned up at the end.
 */
async function probe(port: number, how: ProbeClose, afterMs: number): Promise<() => void> {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  socket.on('data', () => {});
  await new Promise((resolve) => socket.once('connect', resolve));
  if (afterMs > 0) await delay(afterMs);
  if (how === 'half-close') socket.end();
  else if (how === 'close') socket.destroy();
  else socket.resetAndDestroy();
  return () => socket.destroy();
}

for (const mode of MODES) {
  describe(`${mode} mode keeps the contract`, () => {
    it(`${PROBES} connect-and-close probes give their slots back: then ${MAX_CONNECTIONS} clients are all admitted`, async () => {
      const server = await serve(mode, [
        '--store',
        'memory:',
        '--max-connections',
        String(MAX_CONNECTIONS),
      ]);
      const cleanups: (() => void)[] = [];
      try {
        const probes: Promise<() => void>[] = [];
        for (let i = 0; i < PROBES; i++) {
          const how = PROBE_CLOSES[i % PROBE_CLOSES.length]!;
          // Some close before a cluster worker even has its slot answer.
          const afterMs = i % 4 < 2 ? 0 : 5;
          probes.push(probe(server.port, how, afterMs));
          if (i % 5 === 4) cleanups.push(...(await Promise.all(probes.splice(0))));
        }
        if (mode === 'fork') {
          // Each probe that got a slot holds it until its child process has
          // started, seen the close and exited: a slot in use, not a leak.
          await waitFor(
            () => childPids(server.child.pid!),
            (pids) => pids.length === 0,
            10_000,
            'the child processes of the probes to exit',
          );
        }
        // The server sees the last closes (and fork's parent its children's exits) a moment later.
        await delay(300);

        const clients: RawClient[] = [];
        for (let i = 0; i < MAX_CONNECTIONS; i++) {
          const raw = await client(server.port);
          raw.write(`HELO client-${i}\r\n`);
          clients.push(raw);
        }
        if (mode !== 'sequential') {
          // All served at once, each holding its session open.
          await Promise.all(clients.map((raw) => raw.untilBytes(OK.length, 5_000)));
          assert.deepEqual(
            clients.map((raw) => raw.text),
            clients.map(() => OK),
          );
          return;
        }
        // Sequential: all admitted (none refused), each served in turn after the one before quits.
        for (const [i, raw] of clients.entries()) {
          await raw.untilBytes(OK.length, 5_000);
          assert.equal(raw.text, OK, `client ${i}`);
          for (const waiting of clients.slice(i + 1)) {
            assert.equal(waiting.text, '', 'a waiting client gets nothing yet (no 503 BUSY)');
            assert.equal(waiting.isEnded, false, 'a waiting client stays connected');
          }
          raw.write('QUIT\r\n');
          await raw.untilEnded(5_000);
          assert.equal(raw.text, OK + BYE, `client ${i}`);
        }
      } finally {
        for (const cleanup of cleanups) cleanup();
      }
    });

    it('--max-line answers 401 LONG, --idle-timeout 408 TOUT, and DATA acknowledged survives SIGKILL of the group', async () => {
      const file = join(dir, `${mode}.db`);
      const server = await serve(mode, [
        '--store',
        `sqlite:${file}`,
        '--max-line',
        '32',
        '--idle-timeout',
        '0.8',
      ]);
      const idle = await client(server.port);
      idle.write(`HELO ${'x'.repeat(40)}\r\nHELO\r\n`);
      await idle.untilBytes((LONG + OK).length, 5_000);
      const repliedAt = Date.now();
      await idle.untilEnded(5_000);
      assert.equal(idle.text, LONG + OK + TOUT);
      assert.ok(Date.now() - repliedAt >= 600, 'closed by the idle timeout, not sooner');

      const payloads = Array.from({ length: 10 }, (_, i) => `${mode}-${i}`); // under --max-line
      const sender = await client(server.port);
      sender.write(payloads.map((payload) => `DATA ${payload}\r\n`).join(''));
      await sender.untilBytes(DRCV.length * payloads.length, 5_000);
      assert.equal(sender.text, DRCV.repeat(payloads.length));

      const pid = server.child.pid!;
      process.kill(-pid, 'SIGKILL');
      await waitFor(
        () => processGroupMembers(pid),
        (left) => left.length === 0,
        5_000,
        'an empty process group',
      );
      await server.stop();
      const store = SqliteStore.openExisting(file);
      try {
        assert.deepEqual(
          (await store.read(0, 100)).map((record) => record.payload.toString()),
          payloads,
        );
      } finally {
        await store.close();
      }
    });
  });
}
