/**
 * HAProxy in front of helo servers, for the deployment tests
 * (test/deploy/), the demo (scripts/demo-cluster.ts) and benchmarks: runs
 * the real `haproxy` with deploy/haproxy/haproxy.cfg (the file users
 * deploy), filled in through its environment variables, in the foreground
 * as a child process; reads each server's state from HAProxy's runtime API
 * (a Unix socket in a private temporary folder); and makes sure it is gone
 * afterwards.
 *
 * Also the helo servers as the configuration expects them: fixed ports
 * (HAProxy's file names them, and a restarted server must come back on
 * the same one), `--proxy-protocol`, and an HTTP port for /readyz.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './postgres.js';
import { REPO_ROOT, startServerProcess, type StartingServer } from './server-process.js';

/** deploy/haproxy/haproxy.cfg in this repository. */
export const HAPROXY_CONFIG = join(REPO_ROOT, 'deploy', 'haproxy', 'haproxy.cfg');

/** How many `HELO_SERVER_n` slots the configuration has. */
export const HAPROXY_SLOTS = 4;

/** The `haproxy` program, or null when it is not installed (`apt-get install haproxy`). */
export function haproxyPath(): string | null {
  const found = spawnSync('sh', ['-c', 'command -v haproxy'], { encoding: 'utf8' });
  const path = found.stdout.trim();
  return found.status === 0 && path !== '' ? path : null;
}

/** A helo server as HAProxy sees it: its protocol port and the HTTP port /readyz is asked on. */
export interface Backend {
  readonly port: number;
  readonly httpPort: number;
}

/** One server's line of `show stat`. */
export interface BackendState {
  /** `helo1`, `helo2`, … in the order of the backends given. */
  readonly name: string;
  /** `UP`, `DOWN`, `UP 1/2` (going down), `DOWN 1/2` (coming up), `MAINT`, `no check`. */
  readonly status: string;
  /** Connections open on it now. */
  readonly sessions: number;
  /** Connections it was given in all. */
  readonly total: number;
}

export interface Haproxy {
  /** Where clients connect (127.0.0.1). */
  readonly port: number;
  /** The statistics page, http://127.0.0.1:statsPort/. */
  readonly statsPort: number;
  readonly child: ChildProcess;
  /** What HAProxy wrote on stderr (one tcplog line per connection, alerts). */
  readonly stderr: () => string;
  /** Asks the runtime API (`show stat`) for each server's state. */
  states(): Promise<BackendState[]>;
  /** Resolves once every named server (default: all) is `UP`; rejects after `timeoutMs`. */
  waitUntilUp(names?: readonly string[], timeoutMs?: number): Promise<void>;
  /** Resolves once `ok` holds for the servers' states; rejects after `timeoutMs`. */
  waitUntil(what: string, ok: (all: BackendState[]) => boolean, timeoutMs?: number): Promise<void>;
  /** Resolves once the named server's status starts with `DOWN` (or `MAINT`). */
  waitUntilDown(name: string, timeoutMs?: number): Promise<void>;
  /** One command on the runtime API (`show stat`, `disable server helo_servers/helo1`, …). */
  command(line: string): Promise<string>;
  /** Stops HAProxy (SIGTERM, SIGKILL after 5 s) and removes its folder. */
  stop(): Promise<void>;
}

export interface StartHaproxyOptions {
  /** The port clients connect to; a free one when not given. */
  readonly port?: number;
  readonly statsPort?: number;
  /** Another configuration file (default deploy/haproxy/haproxy.cfg). */
  readonly config?: string;
}

/** The server name HAProxy's configuration gives the backend at `index` (0-based). */
export function backendName(index: number): string {
  return `helo${index + 1}`;
}

/** Starts HAProxy for up to HAPROXY_SLOTS backends; resolves once it accepts on its port. */
export async function startHaproxy(
  backends: readonly Backend[],
  options: StartHaproxyOptions = {},
): Promise<Haproxy> {
  const program = haproxyPath();
  if (program === null) throw new Error('haproxy is not installed (apt-get install haproxy)');
  if (backends.length > HAPROXY_SLOTS) {
    throw new Error(`deploy/haproxy/haproxy.cfg has ${HAPROXY_SLOTS} server slots`);
  }
  const port = options.port ?? (await freePort());
  const statsPort = options.statsPort ?? (await freePort());
  const directory = mkdtempSync(join(tmpdir(), 'helo-haproxy-'));
  const socketPath = join(directory, 'admin.sock');
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    HELO_LISTEN: `127.0.0.1:${port}`,
    HELO_STATS: `127.0.0.1:${statsPort}`,
    HELO_HAPROXY_SOCKET: socketPath,
  };
  for (let slot = 1; slot <= HAPROXY_SLOTS; slot += 1) {
    delete env[`HELO_SERVER_${slot}`];
    delete env[`HELO_CHECK_PORT_${slot}`];
  }
  backends.forEach((backend, index) => {
    env[`HELO_SERVER_${index + 1}`] = `127.0.0.1:${backend.port}`;
    env[`HELO_CHECK_PORT_${index + 1}`] = String(backend.httpPort);
  });
  // -db: stay in the foreground, no daemon, so that this process owns it.
  const child = spawn(program, ['-db', '-f', options.config ?? HAPROXY_CONFIG], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  // Bounded: a long run logs one line per connection. Chunks are kept as they
  // come and joined only when asked for, so a busy HAProxy costs no copying.
  const chunks: string[] = [];
  let kept = 0;
  const stderr = (): string => chunks.join('');
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    chunks.push(text);
    kept += text.length;
    while (kept > 4_000_000 && chunks.length > 1) kept -= chunks.shift()!.length;
  });
  const exited = once(child, 'exit');
  const onExit = () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    rmSync(directory, { recursive: true, force: true });
  };
  process.on('exit', onExit);

  const command = (line: string): Promise<string> =>
    new Promise((resolve, reject) => {
      const socket = connect(socketPath);
      let answer = '';
      socket.setEncoding('utf8');
      socket.on('data', (text: string) => (answer += text));
      socket.on('error', reject);
      socket.on('end', () => resolve(answer));
      socket.on('connect', () => socket.end(`${line}\n`));
    });

  const states = async (): Promise<BackendState[]> => {
    const csv = await command('show stat');
    const [header, ...rows] = csv.replace(/^# /, '').trim().split('\n');
    const columns = header!.split(',');
    const at = (name: string) => columns.indexOf(name);
    return rows
      .map((row) => row.split(','))
      .filter((cells) => cells[at('pxname')] === 'helo_servers')
      .filter((cells) => !['FRONTEND', 'BACKEND'].includes(cells[at('svname')]!))
      .map((cells) => ({
        name: cells[at('svname')]!,
        status: cells[at('status')]!,
        sessions: Number(cells[at('scur')]),
        total: Number(cells[at('stot')]),
      }));
  };

  const waitFor = async (
    what: string,
    ok: (all: BackendState[]) => boolean,
    timeoutMs: number,
  ): Promise<void> => {
    const deadline = Date.now() + timeoutMs;
    let last: BackendState[] = [];
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`haproxy exited; stderr: ${stderr().slice(-2000)}`);
      }
      last = await states().catch(() => []);
      if (last.length > 0 && ok(last)) return;
      if (Date.now() > deadline) {
        throw new Error(`haproxy: ${what} not reached in time: ${JSON.stringify(last)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  };

  const haproxy: Haproxy = {
    port,
    statsPort,
    child,
    stderr,
    states,
    command,
    waitUntil: (what, ok, timeoutMs = 15_000) => waitFor(what, ok, timeoutMs),
    waitUntilUp: (names = backends.map((_, index) => backendName(index)), timeoutMs = 15_000) =>
      waitFor(
        `${names.join(', ')} UP`,
        (all) => names.every((name) => all.find((state) => state.name === name)?.status === 'UP'),
        timeoutMs,
      ),
    waitUntilDown: (name, timeoutMs = 15_000) =>
      waitFor(
        `${name} DOWN`,
        (all) => /^(DOWN|MAINT)/.test(all.find((state) => state.name === name)?.status ?? ''),
        timeoutMs,
      ),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const killer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(killer);
      }
      process.off('exit', onExit);
      rmSync(directory, { recursive: true, force: true });
    },
  };
  // Ready once the runtime API answers (the listeners are bound before it).
  await waitFor('start', () => true, 10_000).catch(async (error: unknown) => {
    await haproxy.stop();
    throw error;
  });
  return haproxy;
}

/** A helo server behind HAProxy: fixed ports, so that a restart comes back where HAProxy looks. */
export interface BackendServer extends Backend {
  /** The running process (replaced by `restart()`). */
  readonly process: StartingServer;
  /** Starts the server again on the same ports after it exited. */
  restart(): Promise<void>;
  /** Sends `signal` and resolves with the exit code once it is gone. */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface BackendServerOptions {
  /** `--store` (e.g. a postgres:// URL). */
  readonly store: string;
  /** More flags for `helo server`. */
  readonly args?: readonly string[];
  readonly env?: NodeJS.ProcessEnv;
}

/**
 * Starts `bin/helo server --proxy-protocol --proxy-allow 127.0.0.1/32` on
 * a free port with a free HTTP port, and resolves once it listens.
 */
export async function startBackendServer(options: BackendServerOptions): Promise<BackendServer> {
  const port = await freePort();
  const httpPort = await freePort();
  const args = [
    '--store',
    options.store,
    '--proxy-protocol',
    '--proxy-allow',
    '127.0.0.1/32',
    '--http-port',
    String(httpPort),
    ...(options.args ?? []),
  ];
  const start = async (): Promise<StartingServer> => {
    const server = startServerProcess(args, {
      leadingArgs: ['--port', String(port)],
      ...(options.env === undefined ? {} : { env: options.env }),
    });
    await server.listening;
    return server;
  };
  let current = await start();
  return {
    port,
    httpPort,
    get process() {
      return current;
    },
    async restart() {
      current = await start();
    },
    stop: (signal) => current.stop(signal),
  };
}
