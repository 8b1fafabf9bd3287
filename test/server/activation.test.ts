/**
 * Socket activation and inetd mode (docs/TRANSPORTS.md, "Socket activation
 * and inetd mode"), on real sockets and real processes:
 *
 * - restarts that refuse no one: this test plays systemd's part (a holder
 *   process keeps the listening socket, test/helpers/socket-holder.ts),
 *   clients keep connecting while the server is stopped and a new one is
 *   started on the same socket; none is refused or reset, every session
 *   completes and every acknowledged payload is in the SQLite store;
 * - every concurrency model serves a passed socket, and no child process
 *   inherits the LISTEN_* variables;
 * - `--stdio` serves one session on stdin/stdout, piped or under
 *   `systemd-socket-activate --inetd`.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { after, describe, it } from 'node:test';
import Database from 'better-sqlite3';
import { delay } from '../helpers/raw-client.js';
import { childPids } from '../helpers/processes.js';
import { envWithoutHelo } from '../helpers/run-cli.js';
import { HELO_BIN, REPO_ROOT } from '../../support/server-process.js';

const HOLDER = new URL('../helpers/socket-holder.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'helo-activation-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A listening socket on a free loopback port, held by a holder process (not by this one). */
class Holder {
  readonly port: number;
  readonly #process: ChildProcessWithoutNullStreams;
  readonly #lines: Interface;
  readonly #events: string[] = [];
  #waiters: (() => void)[] = [];

  private constructor(port: number, child: ChildProcessWithoutNullStreams) {
    this.port = port;
    this.#process = child;
    this.#lines = createInterface({ input: child.stdout });
    this.#lines.on('line', (line) => {
      this.#events.push(line);
      for (const wake of this.#waiters.splice(0)) wake();
    });
  }

  static async create(heloArgs: readonly string[]): Promise<Holder> {
    const server = net.createServer();
    server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 });
    await once(server, 'listening');
    const { port } = server.address() as net.AddressInfo;
    const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
    const child = spawn(process.execPath, [HOLDER, ...heloArgs], {
      cwd: REPO_ROOT,
      env: envWithoutHelo(),
      stdio: ['pipe', 'pipe', 'inherit', fd],
    }) as unknown as ChildProcessWithoutNullStreams;
    // From here only the holder has the socket: this process must not accept on it.
    server.close();
    return new Holder(port, child);
  }

  /** Waits for the next event starting with `prefix`; returns its argument. */
  async next(prefix: string, timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.#events.findIndex((line) => line.startsWith(`${prefix} `));
      if (index >= 0) return this.#events.splice(index, 1)[0]!.slice(prefix.length + 1);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`holder: no '${prefix}' within ${timeoutMs} ms`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  send(command: 'start' | 'stop'): void {
    this.#process.stdin.write(`${command}\n`);
  }

  async close(): Promise<void> {
    this.#process.stdin.end();
    if (this.#process.exitCode === null) await once(this.#process, 'exit');
  }
}

interface SessionResult {
  readonly outcome: 'completed' | 'refused' | 'reset' | 'other';
  readonly acknowledged: string | null;
  readonly detail: string;
  /** From connect() to the end: a client that arrived during a restart waited in the accept queue. */
  readonly ms: number;
}

/** One whole session, sent in one write (no idle moment a shutdown could cut). */
function session(port: number, payload: string): Promise<SessionResult> {
  const startedAt = Date.now();
  return new Promise<Omit<SessionResult, 'ms'>>((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    let received = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(`HELO restart\nDATA ${payload}\nQUIT\n`));
    socket.on('data', (text: string) => (received += text));
    socket.setTimeout(15_000, () => socket.destroy(new Error('timeout')));
    socket.on('error', (error: NodeJS.ErrnoException) => {
      const outcome =
        error.code === 'ECONNREFUSED' ? 'refused' : error.code === 'ECONNRESET' ? 'reset' : 'other';
      resolve({ outcome, acknowledged: null, detail: `${error.message} after ${received}` });
    });
    socket.on('close', (hadError) => {
      if (hadError) return;
      const acknowledged = received.includes('300 DRCV') ? payload : null;
      const completed = received === '100 OK\r\n300 DRCV\r\n200 BYE\r\n';
      resolve({
        outcome: completed ? 'completed' : 'other',
        acknowledged,
        detail: JSON.stringify(received),
      });
    });
  }).then((result) => ({ ...result, ms: Date.now() - startedAt }));
}

function storedPayloads(path: string): Set<string> {
  const db = new Database(path, { readonly: true });
  try {
    const rows = db.prepare('SELECT payload FROM records').all() as { payload: Buffer }[];
    return new Set(rows.map((row) => row.payload.toString('utf8')));
  } finally {
    db.close();
  }
}

function environOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8');
  } catch {
    return '';
  }
}

describe('socket activation', () => {
  it('restarts on a held socket without refusing, resetting or losing anyone', async () => {
    const storePath = join(dir, 'restart.db');
    const holder = await Holder.create(['--store', `sqlite:${storePath}`]);
    try {
      holder.send('start');
      await holder.next('listening');
      const results: SessionResult[] = [];
      let isRunning = true;
      let next = 0;
      const client = async (): Promise<void> => {
        while (isRunning) results.push(await session(holder.port, `payload-${next++}`));
      };
      const clients = Array.from({ length: 6 }, () => client());
      await delay(800);
      // systemd's restart: stop, wait for the exit, start again. Clients keep arriving.
      holder.send('stop');
      assert.equal(await holder.next('exited'), '0');
      holder.send('start');
      await holder.next('listening');
      await delay(800);
      holder.send('stop');
      assert.equal(await holder.next('exited'), '0');
      holder.send('start');
      await holder.next('listening');
      await delay(800);
      isRunning = false;
      await Promise.all(clients);
      holder.send('stop');
      assert.equal(await holder.next('exited'), '0');

      const count = (outcome: SessionResult['outcome']): number =>
        results.filter((result) => result.outcome === outcome).length;
      const acknowledged = results.flatMap((result) => result.acknowledged ?? []);
      const stored = storedPayloads(storePath);
      const lost = acknowledged.filter((payload) => !stored.has(payload));
      const figures = {
        attempted: results.length,
        refused: count('refused'),
        reset: count('reset'),
        other: count('other'),
        completed: count('completed'),
        acknowledged: acknowledged.length,
        stored: stored.size,
        lost: lost.length,
        longestSessionMs: Math.max(...results.map((result) => result.ms)),
      };
      console.log(`# restart figures: ${JSON.stringify(figures)}`);
      const odd = results.filter((result) => result.outcome !== 'completed').slice(0, 3);
      assert.equal(figures.refused, 0, JSON.stringify(odd));
      assert.equal(figures.reset, 0, JSON.stringify(odd));
      assert.equal(figures.completed, figures.attempted, JSON.stringify(odd));
      assert.equal(figures.lost, 0);
      assert.ok(figures.attempted > 50, `only ${figures.attempted} sessions`);
    } finally {
      await holder.close();
    }
  });

  for (const mode of ['sequential', 'fork', 'cluster', 'threads'] as const) {
    it(`serves a passed socket in ${mode} mode, and no child sees LISTEN_*`, async () => {
      const storePath = join(dir, `${mode}.db`);
      const extra =
        mode === 'cluster'
          ? ['--workers', '2']
          : mode === 'threads'
            ? ['--threads', '2', '--work-cpu-ms', '1']
            : [];
      const holder = await Holder.create([
        '--mode',
        mode,
        ...extra,
        '--store',
        `sqlite:${storePath}`,
      ]);
      try {
        holder.send('start');
        const pid = Number(await holder.next('listening'));
        const results = await Promise.all(
          Array.from({ length: 4 }, (_, index) => session(holder.port, `${mode}-${index}`)),
        );
        assert.deepEqual(
          results.map((result) => result.outcome),
          ['completed', 'completed', 'completed', 'completed'],
        );
        if (mode === 'cluster') {
          const workers = childPids(pid);
          assert.ok(workers.length >= 2, `workers: ${workers.join(' ')}`);
          for (const worker of workers) assert.doesNotMatch(environOf(worker), /\bLISTEN_/);
        }
        holder.send('stop');
        assert.equal(await holder.next('exited'), '0');
        assert.equal(storedPayloads(storePath).size, 4);
      } finally {
        await holder.close();
      }
    });
  }

  it('refuses LISTEN_FDNAMES it cannot serve with one line and status 2', async () => {
    const child = spawn(
      'sh',
      [
        '-c',
        'LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=smtp exec "$@"',
        'sh',
        process.execPath,
        HELO_BIN,
        'server',
        '--store',
        'memory:',
      ],
      { cwd: REPO_ROOT, env: envWithoutHelo(), stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const [status] = (await once(child, 'exit')) as [number];
    assert.equal(status, 2);
    assert.match(
      stderr,
      /^helo server: LISTEN_FDNAMES: socket 1 \(fd 3\) is named 'smtp'[^\n]*\n$/,
    );
  });
});

describe('inetd mode (--stdio)', () => {
  it('serves one session piped into stdin, replies on stdout, logs on stderr, exit 0', async () => {
    const storePath = join(dir, 'stdio.db');
    const child = spawn(
      process.execPath,
      [HELO_BIN, 'server', '--stdio', '--store', `sqlite:${storePath}`],
      {
        cwd: REPO_ROOT,
        env: envWithoutHelo(),
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    child.stdin.end('HELO pipe\nDATA piped bytes\nQUIT\n');
    const [status] = (await once(child, 'exit')) as [number];
    assert.equal(status, 0, stderr);
    assert.equal(stdout, '100 OK\r\n300 DRCV\r\n200 BYE\r\n');
    assert.match(stderr, /session closed/);
    assert.deepEqual([...storedPayloads(storePath)], ['piped bytes']);
  });

  it(
    'serves each connection under systemd-socket-activate --inetd',
    { skip: !existsSync('/usr/bin/systemd-socket-activate') && 'no systemd-socket-activate' },
    async () => {
      const storePath = join(dir, 'inetd.db');
      const port = await freePort();
      const child = spawn(
        'systemd-socket-activate',
        [
          '--inetd',
          '--accept',
          '-l',
          `127.0.0.1:${port}`,
          process.execPath,
          HELO_BIN,
          'server',
          '--stdio',
          '--store',
          `sqlite:${storePath}`,
        ],
        { cwd: REPO_ROOT, env: envWithoutHelo(), stdio: ['ignore', 'ignore', 'pipe'] },
      );
      let stderr = '';
      child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
      try {
        const deadline = Date.now() + 10_000;
        while (!stderr.includes('Listening on') && Date.now() < deadline) await delay(20);
        const first = await session(port, 'inetd-1');
        const second = await session(port, 'inetd-2');
        assert.equal(first.outcome, 'completed', first.detail);
        assert.equal(second.outcome, 'completed', second.detail);
        assert.deepEqual([...storedPayloads(storePath)].sort(), ['inetd-1', 'inetd-2']);
      } finally {
        child.kill('SIGTERM');
        if (child.exitCode === null) await once(child, 'exit');
      }
    },
  );
});

async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}
