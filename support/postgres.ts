/**
 * A private PostgreSQL cluster for tests and benchmarks: initdb in a
 * temporary folder, its own port on 127.0.0.1 and its own socket folder,
 * fsync on; removed afterwards. Nothing depends on a PostgreSQL started by
 * hand. PostgreSQL refuses to run as root, so as root initdb and the server
 * run as the `postgres` system user (runuser), in a folder that user owns.
 *
 * Also a TCP proxy that can cut a connection right after the database
 * committed but before its reply reaches the store: a lost COMMIT reply,
 * made on purpose (test/store/postgres-store.test.ts).
 */
import { execFile, execFileSync } from 'node:child_process';
import { chownSync, existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';

const run = promisify(execFile);

function binDirectory(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root)
    ? readdirSync(root)
        .filter((name) => existsSync(join(root, name, 'bin', 'initdb')))
        .sort((a, b) => Number(b) - Number(a))
    : [];
  if (versions.length === 0)
    throw new Error('no PostgreSQL server binaries in /usr/lib/postgresql');
  return join(root, versions[0]!, 'bin');
}

/** A free port on 127.0.0.1 (bound, then released). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

export interface PostgresCluster {
  readonly port: number;
  readonly directory: string;
  /** `postgres://helo@127.0.0.1:PORT/DATABASE` (trust authentication). */
  url(database: string, port?: number): string;
  /** Creates a new empty database and returns its URL. */
  createDatabase(name?: string): Promise<string>;
  /** One query on its own connection (closed after). */
  query<R extends pg.QueryResultRow = pg.QueryResultRow>(
    database: string,
    text: string,
    values?: unknown[],
  ): Promise<R[]>;
  /** `pg_ctl stop`: `immediate` is a crash (no checkpoint, every backend killed). */
  stop(mode?: 'immediate' | 'fast'): Promise<void>;
  /** Starts it again on the same port after stop(). */
  start(): Promise<void>;
  /** Stops (immediate) and removes everything. */
  destroy(): Promise<void>;
}

const USER = 'helo';
let databases = 0;

export async function startPostgres(): Promise<PostgresCluster> {
  const bin = binDirectory();
  const asRoot = userInfo().uid === 0;
  const as = (command: string, args: string[]): [string, string[]] =>
    asRoot
      ? ['runuser', ['-u', 'postgres', '--', join(bin, command), ...args]]
      : [join(bin, command), args];
  const directory = mkdtempSync(join(tmpdir(), 'helo-pg-'));
  const data = join(directory, 'data');
  if (asRoot) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString().trim());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString().trim());
    chownSync(directory, uid, gid);
  }
  // --no-sync: only initdb's own final sync of a throwaway folder; the
  // server below runs with fsync on.
  await run(
    ...as('initdb', [
      '-D',
      data,
      '-A',
      'trust',
      '-U',
      USER,
      '-E',
      'UTF8',
      '--locale=C',
      '--no-sync',
    ]),
  );
  let port = await freePort();
  const pgCtl = async (args: string[]) => run(...as('pg_ctl', ['-D', data, ...args]));
  const startServer = () =>
    pgCtl([
      '-o',
      `-p ${port} -k ${directory} -c listen_addresses=127.0.0.1 -c fsync=on ` +
        '-c synchronous_commit=on -c shared_buffers=16MB -c max_connections=60',
      '-l',
      join(directory, 'log'),
      '-w',
      '-t',
      '30',
      'start',
    ]);
  let running = false;
  // A crashed test must not leave a postmaster behind.
  const onExit = () => {
    if (!running) return;
    try {
      execFileSync(...as('pg_ctl', ['-D', data, '-m', 'immediate', 'stop']), { stdio: 'ignore' });
    } catch {
      // Already gone.
    }
    rmSync(directory, { recursive: true, force: true });
  };
  process.on('exit', onExit);
  try {
    await startServer();
  } catch {
    // The port was taken between freePort() and start: once more.
    port = await freePort();
    await startServer();
  }
  running = true;

  const cluster: PostgresCluster = {
    get port() {
      return port;
    },
    directory,
    url: (database, via = port) => `postgres://${USER}@127.0.0.1:${via}/${database}`,
    async createDatabase(name = `t${process.pid}_${++databases}`) {
      await cluster.query('postgres', `CREATE DATABASE ${name}`);
      return cluster.url(name);
    },
    async query(database, text, values = []) {
      const client = new pg.Client({ connectionString: cluster.url(database) });
      client.on('error', () => {});
      await client.connect();
      try {
        return (await client.query(text, values)).rows;
      } finally {
        await client.end().catch(() => {});
      }
    },
    async stop(mode = 'immediate') {
      await pgCtl(['-m', mode, '-w', 'stop']);
      running = false;
    },
    async start() {
      await startServer();
      running = true;
    },
    async destroy() {
      if (running) await cluster.stop('immediate').catch(() => {});
      process.off('exit', onExit);
      rmSync(directory, { recursive: true, force: true });
    },
  };
  return cluster;
}

/** ReadyForQuery, idle: the last message of a connection's start-up. */
const READY_FOR_QUERY_IDLE = Buffer.from([0x5a, 0, 0, 0, 5, 0x49]);

/** The ErrorResponse a backend ended by `pg_terminate_backend()` sends (SQLSTATE 57P01). */
const ADMIN_SHUTDOWN_ERROR = ((): Buffer => {
  const fields = Buffer.from(
    'SFATAL\0VFATAL\0C57P01\0Mterminating connection due to administrator command\0\0',
    'latin1',
  );
  const length = Buffer.alloc(4);
  length.writeUInt32BE(fields.length + 4);
  return Buffer.concat([Buffer.from('E', 'latin1'), length, fields]);
})();

/**
 * A TCP proxy in front of the database. `cutNextCommitReply()` arms it: the
 * next reply that carries an INSERT's CommandComplete (so the statement ran,
 * and with the Sync behind it, committed) is dropped and the connection
 * closed, as if the network failed at the worst moment. `refuse` makes it
 * close new and existing connections at once (the database "unreachable").
 */
export class FaultyProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #cutArmed = 0;
  /** Replies dropped so far. */
  cuts = 0;
  #refusing = false;
  #terminateArmed = false;
  /** Connections ended by terminateAfterNextStartup() so far. */
  terminations = 0;

  private constructor(server: Server) {
    this.#server = server;
  }

  static async start(targetPort: number): Promise<FaultyProxy> {
    const server = createServer();
    const proxy = new FaultyProxy(server);
    server.on('connection', (client) => proxy.#accept(client, targetPort));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return proxy;
  }

  get port(): number {
    return (this.#server.address() as { port: number }).port;
  }

  cutNextCommitReply(times = 1): void {
    this.#cutArmed = times;
  }

  /**
   * Arms it: the next new connection gets, in the same write as the
   * ReadyForQuery that completes its start-up, the error a backend sends
   * when `pg_terminate_backend()` ends it, then the connection closes. A
   * terminate that lands the moment a connection is made.
   */
  terminateAfterNextStartup(): void {
    this.#terminateArmed = true;
  }

  set refuse(value: boolean) {
    this.#refusing = value;
    if (value) for (const socket of this.#sockets) socket.destroy();
  }

  #accept(client: Socket, targetPort: number): void {
    if (this.#refusing) {
      client.destroy();
      return;
    }
    const server = connect(targetPort, '127.0.0.1');
    this.#sockets.add(client).add(server);
    const end = () => {
      client.destroy();
      server.destroy();
      this.#sockets.delete(client);
      this.#sockets.delete(server);
    };
    client.on('error', end).on('close', end);
    server.on('error', end).on('close', end);
    client.on('data', (chunk: Buffer) => server.write(chunk));
    let isStarted = false;
    server.on('data', (chunk: Buffer) => {
      if (!isStarted && chunk.includes(READY_FOR_QUERY_IDLE)) {
        isStarted = true;
        if (this.#terminateArmed) {
          this.#terminateArmed = false;
          this.terminations += 1;
          client.end(Buffer.concat([chunk, ADMIN_SHUTDOWN_ERROR]));
          server.destroy();
          return;
        }
      }
      if (this.#cutArmed > 0 && chunk.includes('INSERT 0 ')) {
        this.#cutArmed -= 1;
        this.cuts += 1;
        end();
        return;
      }
      client.write(chunk);
    });
  }

  async close(): Promise<void> {
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}
