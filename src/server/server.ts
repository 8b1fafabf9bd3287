/**
 * The TCP server of one process: a listener, the connections it serves and
 * their graceful shutdown. Two of the four concurrency models run here:
 *
 * - `event-loop` (the default): every connection is driven by its own
 *   `Connection` on the one event loop, all at once;
 * - `sequential`: connections are accepted (the client is connected) but
 *   served strictly one at a time, in arrival order; the others wait in a
 *   queue, their bytes held by the kernel and by the paused socket.
 *
 * The other two models (`fork`, `cluster`) run this class in other
 * processes: see fork/ and cluster/.
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Server, Socket } from 'node:net';
import type { WebSocket } from 'ws';
import type { WebSocketLineStream } from '../net/websocket-line-stream.js';
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import { ConnectionLimits, refuseSocket, type Admission, type RejectReason } from './admission.js';
import {
  Connection,
  peerOf,
  type ConnectionSummary,
  type StreamSocket,
  type Transport,
} from './connection.js';
import { boundPort, listenTcp, tcpUrl } from './listener.js';
// The extra transports are loaded only when their listener is opened: a
// fork-mode child, which serves one handed-over socket, starts faster
// without them (a process start per connection is the cost of that mode).
import type { TlsHandshaker } from './tls-listener.js';
import type { UdpEndpoint } from './udp-endpoint.js';
import type { HttpListener } from './http-listener.js';
import { createLogger } from './logger.js';
import type { Insight, Observatory } from './observe/observatory.js';
import { RecentRecords, storeNotingRecent } from './observe/recent-records.js';
import { ServerCounters, streamConnections, type CountersData } from './observe/server-counters.js';
import { resolveServerOptions, type ServerOptions } from './options.js';
import { InvalidOptionError } from '../errors.js';

export type { RejectReason } from './admission.js';

export interface StartServerOptions extends Partial<ServerOptions> {
  /** Where payloads go. The caller owns it: the server never closes it. */
  readonly store: Store;
  /** Defaults to a JSON logger on stderr at `logLevel`. */
  readonly logger?: Logger;
  /**
   * Who decides whether a connection may be served. Defaults to exact
   * limits counted in this process; a cluster worker asks its primary.
   */
  readonly admission?: Admission;
  /**
   * Where the server counts what it does (`/metrics`, the dashboard). Give
   * the same object's `onCommit` to the store to count its commits too.
   */
  readonly counters?: ServerCounters;
  /**
   * Where the HTTP port gets metrics and the dashboard: by default this
   * server's own; a cluster worker's comes from its primary.
   */
  readonly insight?: Insight;
}

export type { Transport } from './connection.js';

/** What is known about a connection before its session starts. */
export interface SessionInfo {
  /** Set when another process has already named the session (fork mode). */
  readonly session?: string;
  readonly transport?: Transport;
  /** The TLS client certificate's subject, when there is one. */
  readonly clientCert?: string | null;
}

export interface ServerStats {
  readonly connectionsTotal: number;
  /** Connections open now, waiting ones included. */
  readonly connectionsCurrent: number;
  /** Sequential mode: clients connected and waiting for their turn. */
  readonly waiting: number;
  readonly rejected: Readonly<Record<RejectReason, number>>;
  /** Payloads acknowledged by sessions that have closed (counted at session close). */
  readonly payloadsStored: number;
}

/** What every concurrency model's server offers its caller (the CLI, tests). */
export interface RunningServer {
  readonly options: ServerOptions;
  readonly port: number;
  readonly host: string;
  /** `tcp://127.0.0.1:7777`, with brackets around an IPv6 host. */
  readonly url: string;
  /** Every address listened on: `url` first, then `unix:…`, `tls://…`. */
  readonly urls: readonly string[];
  readonly stats: ServerStats;
  /** SIGHUP: read the TLS certificate files again (no-op without TLS). */
  reloadTls(): void;
  /** Graceful shutdown (README, "Exit statuses and signals"); safe to call twice. */
  close(): Promise<void>;
  /** Settles if the server gives up on its own (a cluster whose workers cannot start). */
  readonly failure?: Promise<Error>;
}

export function emptyRejectCounts(): Record<RejectReason, number> {
  return { 'max-connections': 0, 'max-connections-per-ip': 0, shutdown: 0 };
}

export class HeloServer implements RunningServer {
  readonly options: ServerOptions;
  readonly logger: Logger;
  readonly #store: Store;
  readonly #admission: Admission;
  readonly counters: ServerCounters;
  readonly #insight: Insight | null;
  /** This server's own metrics and dashboard feed, when it has an HTTP port and no other insight. */
  #observatory: Observatory | null = null;
  readonly #recent: RecentRecords | null;
  #server: Server | null = null;
  #tlsServer: Server | null = null;
  #tls: TlsHandshaker | null = null;
  #udp: UdpEndpoint | null = null;
  #http: HttpListener | null = null;
  #webSocketLineStream: typeof WebSocketLineStream | null = null;
  /**
   * Sockets of the HTTP port, with their address: each holds a place among
   * the limits until it closes or, as a WebSocket, passes it to its session.
   */
  readonly #upgrading = new Map<Socket, string>();
  /** Every listener open, TCP first. */
  readonly #listeners: Server[] = [];
  /** Admitted TLS sockets still in their handshake, with their client's address. */
  readonly #handshaking = new Map<Socket, string>();
  readonly #connections = new Set<Connection>();
  /** Sequential mode: sockets admitted and waiting for their turn, oldest first. */
  readonly #waiting = new Map<StreamSocket, WaitingSession>();
  /** Sockets answered 503 BUSY, until they close. */
  readonly #refused = new Set<StreamSocket>();
  /** Session ids are `<boot id>-<counter>`: unique across restarts, cheap to make. */
  readonly #bootId = randomBytes(4).toString('hex');
  #sessionCounter = 0;
  #isShuttingDown = false;
  #closed: Promise<void> | null = null;
  #payloadsStored = 0;
  #onAllClosed: (() => void) | null = null;

  constructor(options: StartServerOptions) {
    const { store, logger, admission, counters, insight, ...rest } = options;
    this.options = resolveServerOptions(rest);
    if (this.options.mode === 'fork' || this.options.mode === 'cluster') {
      throw new InvalidOptionError(
        `HeloServer runs the event-loop and sequential modes; use startServer()`,
      );
    }
    this.logger = logger ?? createLogger(this.options.logLevel);
    this.counters = counters ?? new ServerCounters();
    this.#insight = insight ?? null;
    // The server that answers for itself on the HTTP port notes its latest records for the dashboard.
    this.#recent =
      this.options.httpPort !== null && insight === undefined ? new RecentRecords() : null;
    this.#store = this.#recent === null ? store : storeNotingRecent(store, this.#recent);
    this.#admission =
      admission ??
      new ConnectionLimits(this.options.maxConnections, this.options.maxConnectionsPerIp);
  }

  /** The port actually bound (differs from `options.port` when that is 0). */
  get port(): number {
    return this.#server === null ? this.options.port : boundPort(this.#server, this.options.port);
  }

  get host(): string {
    return this.options.host;
  }

  get url(): string {
    return tcpUrl(this.host, this.port);
  }

  get stats(): ServerStats {
    return {
      connectionsTotal: streamConnections(this.counters.connectionsTotal),
      connectionsCurrent: this.#connections.size + this.#waiting.size,
      waiting: this.#waiting.size,
      rejected: { ...this.counters.rejected },
      payloadsStored: this.#payloadsStored,
    };
  }

  /** Everything this server has counted, UDP datagrams included (the endpoint counts in `counters`). */
  countersData(): CountersData {
    return this.counters.toData();
  }

  async #openObservatory(): Promise<Observatory> {
    const { Observatory } = await import('./observe/observatory.js');
    this.#observatory = new Observatory({
      mode: this.options.mode,
      workers: () => 1,
      collect: () => Promise.resolve(this.countersData()),
      recent: this.#recent ?? new RecentRecords(),
    });
    return this.#observatory;
  }

  /** The live connections (for tests and, later, the dashboard). */
  get connections(): ReadonlySet<Connection> {
    return this.#connections;
  }

  /** Opens every listener the options ask for; if one fails, closes the others. */
  async listen(): Promise<void> {
    const { host, port, unixPath, tlsPort, udpPort, httpPort } = this.options;
    try {
      this.#server = await listenTcp({ host, port }, (socket) => this.serveSocket(socket));
      this.#listeners.push(this.#server);
      if (unixPath !== null) {
        const { listenUnix } = await import('./unix-listener.js');
        const unix = await listenUnix({ path: unixPath, mode: this.options.unixMode }, (socket) =>
          this.serveSocket(socket, { transport: 'unix' }),
        );
        this.#listeners.push(unix);
      }
      if (udpPort !== null) {
        const { UdpEndpoint } = await import('./udp-endpoint.js');
        this.#udp = await UdpEndpoint.bind(
          {
            host,
            port: udpPort,
            maxLineBytes: this.options.maxLineBytes,
            shutdownGraceMs: this.options.shutdownGraceMs,
          },
          {
            store: this.#store,
            logger: this.logger,
            newSessionId: () => this.#newSessionId(),
            isShuttingDown: () => this.#isShuttingDown,
            counters: this.counters,
          },
        );
      }
      if (httpPort !== null) {
        const { HttpListener } = await import('./http-listener.js');
        this.#webSocketLineStream = (
          await import('../net/websocket-line-stream.js')
        ).WebSocketLineStream;
        this.#http = await HttpListener.listen(
          {
            host,
            port: httpPort,
            wsOrigins: this.options.wsOrigins,
            token: this.options.httpToken,
            maxMessageBytes: Math.max(this.options.maxLineBytes + 2, 1 << 20),
            // Short, whatever --idle-timeout says: a page's connections are cheap to reopen.
            idleTimeoutMs: Math.min(this.options.idleTimeoutMs || HTTP_IDLE_MS, HTTP_IDLE_MS),
          },
          {
            admit: (socket, go) =>
              this.#decide(
                socket,
                (ip) => {
                  this.#upgrading.set(socket, ip);
                  socket.once('close', () => {
                    if (this.#upgrading.delete(socket)) this.#admission.release(ip);
                  });
                  go(null);
                },
                (reason) => {
                  this.counters.rejected[reason]++;
                  go('503 Service Unavailable');
                },
                // The HTTP port serves until it closes last: /readyz says 503 meanwhile.
                { duringShutdown: true },
              ),
            onWebSocket: (ws, request) => this.#serveWebSocket(ws, request),
          },
          {
            insight: this.#insight ?? (await this.#openObservatory()),
            isShuttingDown: () => this.#isShuttingDown,
            logger: this.logger,
            counters: this.counters,
          },
        );
      }
      if (tlsPort !== null) {
        const { TlsHandshaker } = await import('./tls-listener.js');
        this.#tls = this.#createTlsHandshaker(TlsHandshaker);
        this.#tlsServer = await listenTcp({ host, port: tlsPort }, (raw) => this.#serveTls(raw));
        this.#listeners.push(this.#tlsServer);
      }
    } catch (error) {
      for (const listener of this.#listeners.splice(0)) listener.close();
      await this.#udp?.close();
      await this.#http?.close();
      throw error;
    }
    for (const listener of this.#listeners) {
      listener.on('error', (error) => this.logger.error({ err: error.message }, 'listener error'));
    }
    this.logger.info({ urls: this.urls, mode: this.options.mode }, 'listening');
  }

  /** Every address this server listens on: `tcp://…`, then `unix:…`, `tls://…`. */
  get urls(): string[] {
    const urls = [this.url];
    if (this.options.unixPath !== null) urls.push(`unix:${this.options.unixPath}`);
    if (this.#tlsServer !== null) {
      urls.push(tcpUrl(this.host, boundPort(this.#tlsServer, 0)).replace('tcp:', 'tls:'));
    }
    if (this.#udp !== null) urls.push(this.#udp.url);
    if (this.#http !== null) urls.push(this.#http.wsUrl);
    return urls;
  }

  /** The HTTP port actually bound, or null without one. */
  get httpPort(): number | null {
    return this.#http?.port ?? null;
  }

  /** A WebSocket on /ws: the same Connection as a socket, over one message per line (§7). */
  #serveWebSocket(ws: WebSocket, request: IncomingMessage): void {
    const raw = request.socket;
    const ip = this.#upgrading.get(raw) ?? raw.remoteAddress ?? '';
    this.#upgrading.delete(raw);
    const stream = new this.#webSocketLineStream!(ws, {
      address: raw.remoteAddress,
      port: raw.remotePort,
    });
    stream.on('close', () => {
      if (stream.protocolError !== null) {
        this.logger.warn(
          { peer: raw.remoteAddress, reason: stream.protocolError },
          'WebSocket closed: not the protocol',
        );
      }
    });
    if (this.#isShuttingDown) {
      this.#admission.release(ip);
      this.#refuse(stream, 'shutdown');
      return;
    }
    this.#admit(stream, ip, { transport: 'ws' });
  }

  /** The UDP port actually bound, or null without UDP. */
  get udpPort(): number | null {
    return this.#udp?.port ?? null;
  }

  /** The TLS port actually bound, or null without TLS. */
  get tlsPort(): number | null {
    return this.#tlsServer === null ? null : boundPort(this.#tlsServer, 0);
  }

  /**
   * Reads the TLS certificate files again (SIGHUP): new connections use the
   * new ones. A failure is logged and the old certificates stay in use.
   */
  reloadTls(): void {
    if (this.#tls === null) return;
    try {
      this.#tls.reload();
      this.logger.info('TLS certificates reloaded');
    } catch (error) {
      this.logger.error(
        { err: error instanceof Error ? error.message : String(error) },
        'TLS certificates not reloaded; the previous ones stay in use',
      );
    }
  }

  #createTlsHandshaker(Handshaker: typeof TlsHandshaker): TlsHandshaker {
    const { tlsCertPath, tlsKeyPath, tlsCaPath } = this.options;
    return new Handshaker(
      { certPath: tlsCertPath!, keyPath: tlsKeyPath!, caPath: tlsCaPath },
      {
        requireClientCert: this.options.tlsRequireClientCert,
        handshakeTimeoutMs: this.options.tlsHandshakeTimeoutMs,
      },
      (socket, raw, clientCert) => {
        // Keyed by the raw socket: it is what #serveTls admitted.
        const ip = this.#handshaking.get(raw) ?? raw.remoteAddress ?? '';
        this.#handshaking.delete(raw);
        if (this.#isShuttingDown) {
          this.#admission.release(ip);
          this.#refuse(socket, 'shutdown');
        } else {
          this.#admit(socket, ip, { transport: 'tls', clientCert });
        }
      },
      (raw, error) => {
        this.logger.debug({ peer: raw.remoteAddress, err: error.message }, 'TLS handshake failed');
      },
    );
  }

  /**
   * A TLS connection is admitted (limits) before its handshake starts, so
   * handshakes cannot get around the limits. A refused one is closed
   * without a reply: before the handshake there is no way to send one.
   */
  #serveTls(raw: Socket): void {
    raw.on('error', ignoreError);
    this.#decide(
      raw,
      (ip) => {
        // The TLS socket wraps the raw one: both are known by the raw one's close.
        this.#handshaking.set(raw, ip);
        raw.once('close', () => {
          // Closed before a session took it over: the handshake failed or timed out.
          if (this.#handshaking.delete(raw)) this.#admission.release(ip);
        });
        this.#tls!.handshake(raw);
      },
      (reason) => {
        this.counters.rejected[reason]++;
        raw.destroy();
      },
    );
  }

  /**
   * Serves a connected socket: from one of this server's listeners, or
   * handed over by another process (fork mode, which names the session).
   */
  serveSocket(socket: Socket, info: SessionInfo = {}): void {
    this.#decide(
      socket,
      (ip) => this.#admit(socket, ip, info),
      (reason) => this.#refuse(socket, reason),
    );
  }

  /** Limits are decided before any other work: no session, no parsing, no handshake. */
  #decide(
    socket: Socket,
    admitted: (ip: string) => void,
    refused: (reason: RejectReason) => void,
    { duringShutdown = false } = {},
  ): void {
    if (this.#isShuttingDown && !duringShutdown) {
      refused('shutdown');
      return;
    }
    const ip = socket.remoteAddress ?? '';
    const decision = this.#admission.admit(ip);
    if (decision === null) {
      admitted(ip);
    } else if (typeof decision === 'string') {
      refused(decision);
    } else {
      // An answer from elsewhere (a cluster's primary): the socket holds its
      // bytes meanwhile, since nothing reads it yet.
      socket.on('error', ignoreError);
      decision.then(
        (reason) => {
          if (reason !== null) {
            refused(reason);
          } else if (socket.destroyed || (!duringShutdown && socket.readableEnded)) {
            // Gone while the answer travelled (a port probe, a health check).
            // Its EOF was read with no 'end' listener yet, and the listener
            // keeps half-open sockets, so no session would ever see it close.
            // (An HTTP socket is read by the HTTP parser, which sees its end.)
            this.#admission.release(ip);
            socket.destroy();
          } else if (this.#isShuttingDown && !duringShutdown) {
            this.#admission.release(ip);
            refused('shutdown');
          } else {
            admitted(ip);
          }
        },
        () => refused('max-connections'),
      );
    }
  }

  #refuse(socket: StreamSocket, reason: RejectReason): void {
    this.counters.rejected[reason]++;
    if (socket.destroyed) return;
    this.logger.debug({ peer: socket.remoteAddress, reason }, 'connection refused: 503 BUSY');
    this.#refused.add(socket);
    refuseSocket(socket, () => this.#refused.delete(socket));
  }

  #admit(socket: StreamSocket, ip: string, info: SessionInfo): void {
    const transport = info.transport ?? 'tcp';
    this.counters.connectionsTotal[transport]++;
    this.counters.connectionsCurrent[transport]++;
    if (
      this.options.mode === 'sequential' &&
      (this.#connections.size > 0 || this.#waiting.size > 0)
    ) {
      this.#wait(socket, ip, info);
      return;
    }
    this.#startSession(socket, ip, info);
  }

  #newSessionId(): string {
    return `${this.#bootId}-${(++this.#sessionCounter).toString(36)}`;
  }

  #startSession(socket: StreamSocket, ip: string, info: SessionInfo): void {
    const id = info.session ?? this.#newSessionId();
    const connection = new Connection(socket, id, {
      options: this.options,
      store: this.#store,
      logger: this.logger,
      counters: this.counters,
      transport: info.transport ?? 'tcp',
      clientCert: info.clientCert ?? null,
      onClose: (closed, summary) => this.#connectionOnClose(closed, summary, ip),
    });
    this.#connections.add(connection);
  }

  /** Sequential mode: the client is connected; its turn comes when those before it leave. */
  #wait(socket: StreamSocket, ip: string, info: SessionInfo): void {
    // A client that gives up while waiting leaves the queue. Its FIN shows as
    // 'end' only once everything it sent before has been read, so a client
    // that sent requests and then half-closed keeps its place (and replies).
    const socketOnClose = (): void => {
      if (this.#waiting.delete(socket)) {
        this.counters.connectionsCurrent[info.transport ?? 'tcp']--;
        this.#admission.release(ip);
        this.#checkAllClosed();
      }
    };
    const socketOnEnd = (): void => void socket.destroy();
    socket.on('error', ignoreError);
    socket.once('end', socketOnEnd);
    socket.once('close', socketOnClose);
    this.#waiting.set(socket, { ip, info, socketOnEnd, socketOnClose });
    this.logger.info(
      { peer: peerOf(socket, info.transport ?? 'tcp'), waiting: this.#waiting.size },
      'client waiting for its turn',
    );
  }

  #serveNextWaiting(): void {
    if (this.#connections.size > 0) return;
    const next = this.#waiting.entries().next();
    if (next.done === true) return;
    const [socket, waiting] = next.value;
    this.#waiting.delete(socket);
    socket.off('end', waiting.socketOnEnd);
    socket.off('close', waiting.socketOnClose);
    socket.off('error', ignoreError);
    this.logger.info(
      { peer: peerOf(socket, waiting.info.transport ?? 'tcp'), waiting: this.#waiting.size },
      'waiting client served',
    );
    this.#startSession(socket, waiting.ip, waiting.info);
  }

  /**
   * Graceful shutdown (README, signals): stop accepting, answer what was received,
   * `503 BUSY` to idle and waiting sessions, and resolve once every
   * connection is closed (busy ones are cut off after `shutdownGraceMs`).
   * Safe to call twice.
   */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    this.#isShuttingDown = true;
    this.logger.info(
      { connections: this.#connections.size, waiting: this.#waiting.size },
      'shutting down',
    );
    const listenersClosed = Promise.all(
      this.#listeners.map(
        (listener) => new Promise<void>((resolve) => listener.close(() => resolve())),
      ),
    );
    for (const raw of this.#handshaking.keys()) raw.destroy();
    // Waiting clients were never served: they get 503 BUSY, like idle ones.
    for (const [socket, waiting] of this.#waiting) {
      this.#waiting.delete(socket);
      socket.off('close', waiting.socketOnClose);
      this.counters.connectionsCurrent[waiting.info.transport ?? 'tcp']--;
      this.#admission.release(waiting.ip);
      this.#refuse(socket, 'shutdown');
    }
    const allClosed = new Promise<void>((resolve) => {
      this.#onAllClosed = resolve;
      this.#checkAllClosed();
    });
    for (const connection of this.#connections) connection.shutdown();
    const grace = setTimeout(() => {
      for (const connection of this.#connections) connection.destroy();
    }, this.options.shutdownGraceMs);
    // Datagrams get 503 BUSY from now on; appends in flight finish first.
    const udpClosed = this.#udp?.close();
    await allClosed;
    await udpClosed;
    // The HTTP port closes last: until now `/readyz` has been answering 503.
    await this.#http?.close();
    this.#observatory?.close();
    clearTimeout(grace);
    for (const socket of this.#refused) socket.destroy();
    await listenersClosed;
    this.logger.info('server closed');
  }

  #checkAllClosed(): void {
    if (this.#connections.size === 0 && this.#waiting.size === 0) this.#onAllClosed?.();
  }

  #connectionOnClose(connection: Connection, summary: ConnectionSummary, ip: string): void {
    this.#connections.delete(connection);
    this.counters.connectionsCurrent[summary.transport]--;
    this.#payloadsStored += summary.payloads;
    this.#admission.release(ip);
    if (!this.#isShuttingDown) this.#serveNextWaiting();
    this.#checkAllClosed();
  }
}

/** What a waiting socket will need when its turn comes. */
interface WaitingSession {
  readonly ip: string;
  readonly info: SessionInfo;
  readonly socketOnEnd: () => void;
  readonly socketOnClose: () => void;
}

function ignoreError(): void {}

/** Longest an HTTP connection may idle (ms); a lower --idle-timeout lowers it. */
const HTTP_IDLE_MS = 10_000;

/**
 * Creates an event-loop or sequential server and starts listening. For
 * every mode, fork and cluster included, see `runServer()`.
 */
export async function startServer(options: StartServerOptions): Promise<HeloServer> {
  const server = new HeloServer(options);
  await server.listen();
  return server;
}
