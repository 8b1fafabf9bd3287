/**
 * Signals from the first moment of `helo server` (docs/RELIABILITY.md):
 * a SIGHUP while the server is still starting must not end it (Node's
 * default action for SIGHUP is to exit), a SIGTERM then ends it with 0, and
 * a SIGHUP to the whole process group leaves fork-mode sessions and cluster
 * workers serving.
 *
 * "The first moment" is the first line of JavaScript: Node resets every
 * signal to its default action when it starts and runs no JavaScript for
 * its first tens of milliseconds (hundreds on a loaded machine), so no
 * program written for Node can catch a signal earlier. The tests therefore
 * read the kernel's view of the process (/proc/PID/status, SigCgt) to see
 * when SIGHUP is caught, and require that to happen before the server
 * listens, that is, before the server's modules load.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { describe, it } from 'node:test';
import { delay, RawClient } from '../helpers/raw-client.js';
import { processGroupMembers, waitFor } from '../helpers/processes.js';
import { envWithoutHelo } from '../helpers/run-cli.js';
import { HELO_BIN, REPO_ROOT, spawnServer } from '../../support/server-process.js';

const isLinux = existsSync('/proc/self/status');

/** True when process `pid` has a handler for SIGHUP (bit 0 of SigCgt), false otherwise or when gone. */
function catchesSighup(pid: number): boolean {
  try {
    const match = /^SigCgt:\s*([0-9a-f]+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match !== null && (BigInt(`0x${match[1]}`) & 1n) === 1n;
  } catch {
    return false;
  }
}

/** True when process `pid` holds a listening TCP socket (Linux, from /proc). */
function listensOnTcp(pid: number): boolean {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))?.[1];
      if (inode !== undefined) inodes.add(inode);
    } catch {
      // closed meanwhile
    }
  }
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    const lines = existsSync(table) ? readFileSync(table, 'utf8').split('\n').slice(1) : [];
    for (const line of lines) {
      // sl local_address rem_address st ... inode; st 0A is LISTEN.
      const fields = line.trim().split(/\s+/);
      if (fields[3] === '0A' && inodes.has(fields[9] ?? '')) return true;
    }
  }
  return false;
}

interface Starting {
  readonly child: ChildProcessWithoutNullStreams;
  readonly stdout: () => string;
  readonly stderr: () => string;
  readonly exited: Promise<unknown[]>;
}

function startServer(args: string[]): Starting {
  const child = spawn(process.execPath, [HELO_BIN, 'server', '--port', '0', ...args], {
    cwd: REPO_ROOT,
    env: envWithoutHelo(),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  return { child, stdout: () => stdout, stderr: () => stderr, exited: once(child, 'exit') };
}

/** Polls (every event-loop turn) until the process catches SIGHUP; says whether it listens by then. */
async function untilSighupCaught(
  server: Starting,
  { checkListening = true } = {},
): Promise<{ listening: boolean }> {
  const deadline = Date.now() + 15_000;
  const pid = server.child.pid!;
  while (!catchesSighup(pid)) {
    assert.deepEqual(
      { code: server.child.exitCode, signal: server.child.signalCode },
      { code: null, signal: null },
      `the server ended; stderr: ${server.stderr()}`,
    );
    assert.ok(Date.now() < deadline, 'SIGHUP never caught');
    await new Promise((resolve) => setImmediate(resolve));
  }
  // Deterministic, unlike reading stdout: the kernel knows whether it listens yet.
  return { listening: checkListening && listensOnTcp(pid) };
}

/**
 * Starts a server and waits until it catches SIGHUP, which must happen
 * before it listens. The test's polling can itself be late on a loaded
 * machine (the server was already listening when the poll came round), so
 * a start that is seen listening is tried again, up to 4 times: code that
 * catches SIGHUP only after listening is seen listening every time.
 */
async function startCaughtBeforeListening(args: string[]): Promise<Starting> {
  for (let attempt = 1; ; attempt++) {
    const server = startServer(args);
    const { listening } = await untilSighupCaught(server);
    if (!listening) return server;
    await stopAndWait(server);
    assert.ok(attempt < 4, 'SIGHUP must be caught before the server listens (4 starts)');
  }
}

async function stopAndWait(server: Starting): Promise<number | null> {
  if (server.child.exitCode === null && server.child.signalCode === null) {
    server.child.kill('SIGTERM');
  }
  const killer = setTimeout(() => server.child.kill('SIGKILL'), 12_000);
  const [code] = (await server.exited) as [number | null];
  clearTimeout(killer);
  return code;
}

describe('signals during start-up', { skip: !isLinux && 'needs /proc (Linux)' }, () => {
  for (const afterMs of [0, 20, 50, 100, 200]) {
    it(`survives a SIGHUP ${afterMs} ms after SIGHUP is first caught, then serves`, async () => {
      const server = await startCaughtBeforeListening(['--store', 'memory:']);
      try {
        await delay(afterMs);
        server.child.kill('SIGHUP');
        const port = await waitFor(
          () => /listening on tcp:\/\/[^\s]*:(\d+)/.exec(server.stdout())?.[1],
          (found) => found !== undefined || server.child.exitCode !== null,
          15_000,
          'the server to listen',
        );
        assert.equal(server.child.signalCode, null, `ended by ${server.child.signalCode}`);
        assert.ok(port !== undefined, `the server did not start; stderr: ${server.stderr()}`);
        const client = await RawClient.open(Number(port));
        client.write('HELO early\nDATA x\nQUIT\n');
        await client.untilEnded();
        assert.equal(client.text, '100 OK\r\n300 DRCV\r\n200 BYE\r\n');
      } finally {
        assert.equal(await stopAndWait(server), 0);
      }
    });
  }

  it('exits 0 promptly on a SIGTERM before it listens, without starting to listen', async () => {
    // SIGTERM the moment SIGHUP is caught, long before the listeners open:
    // no listensOnTcp() in between, which reads the whole /proc/net/tcp and
    // on a machine with thousands of sockets took long enough for the
    // server to start listening meanwhile. A start that still listened
    // before the SIGTERM reached it is tried again; one that listens after a
    // SIGTERM it received first is seen listening every time.
    for (let attempt = 1; ; attempt++) {
      const server = startServer(['--store', 'memory:']);
      try {
        await untilSighupCaught(server, { checkListening: false });
        const sentAt = Date.now();
        server.child.kill('SIGTERM');
        const killer = setTimeout(() => server.child.kill('SIGKILL'), 12_000);
        const [code, signal] = (await server.exited) as [number | null, NodeJS.Signals | null];
        clearTimeout(killer);
        assert.deepEqual({ code, signal }, { code: 0, signal: null }, server.stderr());
        assert.ok(Date.now() - sentAt < 10_000);
        if (!/listening on/.test(server.stdout())) return;
        assert.ok(attempt < 4, `listened after SIGTERM in 4 starts: ${server.stderr()}`);
      } finally {
        await stopAndWait(server);
      }
    }
  });
});

/** Sends `HELO`, waits for `100 OK`: a session in progress. */
async function sessionInProgress(port: number): Promise<RawClient> {
  const client = await RawClient.open(port);
  client.write('HELO group\n');
  await client.untilBytes('100 OK\r\n'.length, 10_000);
  return client;
}

async function finishSession(client: RawClient): Promise<void> {
  client.write('DATA x\n');
  await client.until(() => client.text.includes('300 DRCV'), 5_000, '300 DRCV');
  client.write('QUIT\n');
  await client.untilEnded();
  assert.equal(client.text, '100 OK\r\n300 DRCV\r\n200 BYE\r\n');
}

describe('SIGHUP to the whole process group', { skip: !isLinux && 'needs /proc (Linux)' }, () => {
  it('leaves fork-mode sessions intact', async () => {
    const server = await spawnServer(['--store', 'memory:', '--mode', 'fork'], { detached: true });
    const pgid = server.child.pid!;
    try {
      const client = await sessionInProgress(server.port);
      // The session's child is in the group too (it is the one at risk).
      assert.ok(processGroupMembers(pgid).length >= 2, 'the session child runs');
      process.kill(-pgid, 'SIGHUP');
      await delay(300);
      await finishSession(client);
      // A new session still works after the group's SIGHUP.
      await finishSession(await sessionInProgress(server.port));
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });

  it('leaves cluster workers serving', async () => {
    const server = await spawnServer(
      ['--store', 'memory:', '--mode', 'cluster', '--workers', '2'],
      {
        detached: true,
      },
    );
    const pgid = server.child.pid!;
    try {
      const clients = [await sessionInProgress(server.port), await sessionInProgress(server.port)];
      const members = processGroupMembers(pgid);
      process.kill(-pgid, 'SIGHUP');
      await delay(300);
      for (const client of clients) await finishSession(client);
      assert.deepEqual(processGroupMembers(pgid).sort(), members.sort(), 'no process ended');
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });
});
