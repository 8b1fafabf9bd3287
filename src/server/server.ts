/**
 * The TCP server, event-loop model (the default): one process, one thread,
 * every connection driven by its own `Connection` on the shared event loop.
 */
import { randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import type { Logger } from 'pino';
import { Replies } from '../core/replies.js';
import { ListenError } from '../errors.js';
import type { Store } from '../store/store.js';
import { Connection, type ConnectionSummary } from './connection.js';
import { createLogger } from './logger.js';
import { resolveServerOptions, type ServerOptions } from './options.js';

export interface StartServerOptions extends Partial<ServerOptions> {
  /** Where payloads go. The caller owns it: the server never closes it. */
  readonly store: Store;
  /** Defaults to a JSON logger on stderr at `logLevel`. */
  readonly logger?: Logger;
}

/** How long a refused connection may stay open to read its 503 BUSY. */
const REFUSED_LINGER_MS = 1_000;

export type RejectReason = 'max-connections' | 'max-connections-per-ip' | 'shutdown';

export interface ServerStats {
  readonly connectionsTotal: number;
  readonly connectionsCurrent: number;
  readonly rejected: Readonly<Record<RejectReason, number>>;
  /** Payloads acknowledged by sessions that have closed (counted at session close). */
  readonly payloadsStored: number;
}

export class HeloServer {
  readonly options: ServerOptions;
  readonly logger: Logger;
  readonly #store: Store;
  readonly #server: Server;
  readonly #connections = new Set<Connection>();
  /** Sockets answered 503 BUSY, until they close. */
  readonly #refused = new Set<Socket>();
  readonly #connectionsPerIp = new Map<string, number>();
  /** Session ids are `<boot id>-<counter>`: unique across restarts, cheap to make. */
  readonly #bootId = randomBytes(4).toString('hex');
  #sessionCounter = 0;
  #isShuttingDown = false;
  #closed: Promise<void> | null = null;
  #connectionsTotal = 0;
  #payloadsStored = 0;
  readonly #rejected: Record<RejectReason, number> = {
    'max-connections': 0,
    'max-connections-per-ip': 0,
    shutdown: 0,
  };
  #onAllClosed: (() => void) | null = null;

  constructor(options: StartServerOptions) {
    const { store, logger, ...rest } = options;
    this.options = resolveServerOptions(rest);
    this.logger = logger ?? createLogger(this.options.logLevel);
    this.#store = store;
    // allowHalfOpen: a client's FIN must not stop the replies it is owed (§2).
    this.#server = createServer({ allowHalfOpen: true, noDelay: true }, this.#serverOnConnection);
  }

  /** The port actually bound (differs from `options.port` when that is 0). */
  get port(): number {
    const address = this.#server.address();
    return typeof address === 'object' && address !== null ? address.port : this.options.port;
  }

  get host(): string {
    return this.options.host;
  }

  /** `tcp://127.0.0.1:7777`, with brackets around an IPv6 host. */
  get url(): string {
    const host = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `tcp://${host}:${this.port}`;
  }

  get stats(): ServerStats {
    return {
      connectionsTotal: this.#connectionsTotal,
      connectionsCurrent: this.#connections.size,
      rejected: { ...this.#rejected },
      payloadsStored: this.#payloadsStored,
    };
  }

  /** The live connections (for tests and, later, the dashboard). */
  get connections(): ReadonlySet<Connection> {
    return this.#connections;
  }

  async listen(): Promise<void> {
    const { host, port } = this.options;
    await new Promise<void>((resolve, reject) => {
      const serverOnError = (error: NodeJS.ErrnoException): void => {
        reject(new ListenError(describeListenError(error, host, port), { cause: error }));
      };
      this.#server.once('error', serverOnError);
      this.#server.listen({ host, port, backlog: 4096 }, () => {
        this.#server.off('error', serverOnError);
        resolve();
      });
    });
    this.#server.on('error', (error) => this.logger.error({ err: error.message }, 'server error'));
    this.logger.info({ url: this.url }, 'listening');
  }

  /**
   * Graceful shutdown (cli.md): stop accepting, answer what was received,
   * `503 BUSY` to idle sessions, and resolve once every connection is closed
   * (busy ones are cut off after `shutdownGraceMs`). Safe to call twice.
   */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    this.#isShuttingDown = true;
    this.logger.info({ connections: this.#connections.size }, 'shutting down');
    const listenerClosed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    const allClosed = new Promise<void>((resolve) => {
      this.#onAllClosed = resolve;
      if (this.#connections.size === 0) resolve();
    });
    for (const connection of this.#connections) connection.shutdown();
    const grace = setTimeout(() => {
      for (const connection of this.#connections) connection.destroy();
    }, this.options.shutdownGraceMs);
    await allClosed;
    clearTimeout(grace);
    for (const socket of this.#refused) socket.destroy();
    await listenerClosed;
    this.logger.info('server closed');
  }

  readonly #serverOnConnection = (socket: Socket): void => {
    // Limits are decided before any other work: no session, no parsing.
    const reason = this.#rejectReason(socket);
    if (reason !== null) {
      this.#rejected[reason]++;
      socket.on('error', ignoreError);
      // Read (and drop) whatever it sends, so that its FIN is seen and the socket closes.
      socket.resume();
      socket.end(Replies.BUSY.bytes);
      // A refused client gets a moment to read its 503 BUSY, however it
      // behaves; then the socket goes, so refused sockets cannot pile up.
      this.#refused.add(socket);
      const timer = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
      socket.once('close', () => {
        clearTimeout(timer);
        this.#refused.delete(socket);
      });
      return;
    }
    this.#connectionsTotal++;
    const ip = socket.remoteAddress ?? '';
    if (this.options.maxConnectionsPerIp > 0) {
      this.#connectionsPerIp.set(ip, (this.#connectionsPerIp.get(ip) ?? 0) + 1);
    }
    const session = `${this.#bootId}-${(++this.#sessionCounter).toString(36)}`;
    const connection = new Connection(socket, session, {
      options: this.options,
      store: this.#store,
      logger: this.logger,
      onClose: (closed, summary) => this.#connectionOnClose(closed, summary, ip),
    });
    this.#connections.add(connection);
  };

  #rejectReason(socket: Socket): RejectReason | null {
    if (this.#isShuttingDown) return 'shutdown';
    if (this.#connections.size >= this.options.maxConnections) return 'max-connections';
    const perIp = this.options.maxConnectionsPerIp;
    if (perIp > 0 && (this.#connectionsPerIp.get(socket.remoteAddress ?? '') ?? 0) >= perIp) {
      return 'max-connections-per-ip';
    }
    return null;
  }

  #connectionOnClose(connection: Connection, summary: ConnectionSummary, ip: string): void {
    this.#connections.delete(connection);
    this.#payloadsStored += summary.payloads;
    if (this.options.maxConnectionsPerIp > 0) {
      const left = (this.#connectionsPerIp.get(ip) ?? 1) - 1;
      if (left <= 0) this.#connectionsPerIp.delete(ip);
      else this.#connectionsPerIp.set(ip, left);
    }
    if (this.#connections.size === 0) this.#onAllClosed?.();
  }
}

function ignoreError(): void {}

function describeListenError(error: NodeJS.ErrnoException, host: string, port: number): string {
  const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
  switch (error.code) {
    case 'EADDRINUSE':
      return `cannot listen on ${where}: the port is already in use`;
    case 'EACCES':
      return `cannot listen on ${where}: permission denied`;
    case 'EADDRNOTAVAIL':
      return `cannot listen on ${where}: the address is not available on this machine`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `cannot listen on ${where}: unknown host '${host}'`;
    default:
      return `cannot listen on ${where}: ${error.message}`;
  }
}

/** Creates a server and starts listening. */
export async function startServer(options: StartServerOptions): Promise<HeloServer> {
  const server = new HeloServer(options);
  await server.listen();
  return server;
}
