/**
 * The server of one process, for two of the four concurrency models:
 *
 * - `event-loop` (the default): every connection is driven by its own
 *   `Connection` on the one event loop, all at once;
 * - `sequential`: connections are accepted (the client is connected) but
 *   served strictly one at a time, in arrival order; the others wait in a
 *   queue, their bytes held by the kernel and by the paused socket.
 *
 * It reads top to bottom as a connection's life: listeners (transports/)
 * → admission (`#arrive`, admission.ts) → sessions (`#admit`, the sequential
 * queue) → shutdown. The other two models (`fork`, `cluster`) run this
 * class in other processes: see fork/ and cluster/.
 */
import type { IncomingMessage } from 'node:http';
import type { BlockList, Socket } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import type { WebSocket } from 'ws';
import type { Store } from '../store/store.js';
import { BalancerDrain } from './balancer-drain.js';
import {
  ConnectionLimits,
  AdmissionGate,
  HeldSlots,
  RefusedSockets,
  combinedAdmission,
  type Admission,
  type RejectReason,
} from './admission.js';
import {
  Connection,
  peerOf,
  type ConnectionSummary,
  type StreamSocket,
  type Transport,
} from './connection.js';
import { LiveList, type ListEntry } from './live-list.js';
// The other transports are loaded only when their listener is opened: a
// fork-mode child, which serves one handed-over socket, starts faster
// without them (a process start per connection is the cost of that mode).
import { boundPort, TcpTransport } from './transports/tcp.js';
import type { StreamTransport } from './transports/transport.js';
import type { ListenFds } from './transports/activation.js';
import type { TlsTransport, TlsTransportOptions } from './transports/tls.js';
import type { UdpEndpoint } from './transports/udp.js';
import type { webSocketStream } from './transports/websocket.js';
import type { HttpListener } from './http-listener.js';
import type { Insight, Observatory } from './observe/observatory.js';
import { RecentRecords, storeNotingRecent } from './observe/recent-records.js';
import { ServerCounters, streamConnections, type CountersData } from './observe/server-counters.js';
import { resolveServerOptions } from './options.js';
import type { CpuWorkRunner } from './simulated-work.js';
import {
  ServerBase,
  type ServerInternals,
  type ServerStats,
  type StartServerOptions,
} from './running-server.js';
import { InvalidOptionError } from '../errors.js';
import {
  isTrustedSource,
  proxiedClient,
  proxyAllowList,
  readProxyHeader,
  type ProxiedClient,
} from './proxy-stage.js';

export type { RejectReason } from './admission.js';
export type { Transport } from './connection.js';
export type { RunningServer, ServerStats, StartServerOptions } from './running-server.js';

/** What is known about a connection before its session starts. */
export interface SessionInfo {
  /** Set when another process has already named the session (fork mode). */
  readonly session?: string;
  readonly transport?: Transport;
  /** The TLS client certificate's subject, when there is one. */
  readonly clientCert?: string | null;
  /** docs/PROTOCOL.md §10: the client a PROXY header named, as `peer` shows it. */
  readonly peer?: string;
  /** docs/PROTOCOL.md §10: where the connection really came from (the balancer). */
  readonly proxy?: string;
}

export class HeloServer extends ServerBase {
  readonly #store: Store;
  readonly #admission: Admission;
  /** The limits, asked for every connection before any other work. */
  readonly #gate: AdmissionGate;
  readonly counters: ServerCounters;
  readonly #insight: Insight | null;
  /** This server's own metrics and dashboard feed, when it has an HTTP port and no other insight. */
  #observatory: Observatory | null = null;
  readonly #recent: RecentRecords | null;
  /** Every stream listener open, TCP first. */
  readonly #transports: StreamTransport[] = [];
  #tcp: TcpTransport | null = null;
  #tls: TlsTransport | null = null;
  #udp: UdpEndpoint | null = null;
  #http: HttpListener | null = null;
  #webSocketStream: typeof webSocketStream | null = null;
  // Admitted sockets not served yet, each holding its admission slot (HeldSlots):
  /** Stream sockets their transport is opening (a TLS handshake). */
  readonly #opening: HeldSlots;
  /** Connections of the HTTP port, until they close or, as a WebSocket, pass their slot on. */
  readonly #onHttpPort: HeldSlots;
  /** Sequential mode: sockets waiting for their turn, oldest first. */
  readonly #waiting: HeldSlots<WaitingSession>;
  readonly #connections = new LiveList<Connection>();
  readonly #refused: RefusedSockets;
  /** --proxy-protocol: sockets whose PROXY header is being read. */
  readonly #readingHeader = new LiveList<Socket>();
  /** Sockets the listeners have handed over so far (#takeQueued, #balancerDrain). */
  #arrivals = 0;
  /** Keeps the listeners open at shutdown while a balancer still sends here. */
  readonly #balancerDrain = new BalancerDrain();
  /**
   * --proxy-protocol (docs/PROTOCOL.md §10): the connection limit, taken at
   * accept (`#atAccept`, held in `#headerSlots` until the header is read),
   * and the per-IP limit, asked once the header names the client. Without
   * --proxy-protocol `#admission` is `#atAccept` and decides both at accept.
   */
  readonly #atAccept: Admission;
  readonly #acceptGate: AdmissionGate;
  readonly #afterHeader: AdmissionGate | null;
  readonly #headerSlots: HeldSlots;
  #proxyAllow: BlockList | null = null;
  #payloadsStored = 0;
  #onAllClosed: (() => void) | null = null;
  /** Sockets passed by socket activation, by listener (transports/activation.ts). */
  readonly #fds: ListenFds;
  /** `--mode threads`: where each request's CPU work runs (threads/threads-server.ts). */
  readonly #cpuWork: CpuWorkRunner | null;

  constructor(options: StartServerOptions, internals: ServerInternals = {}) {
    const { store, logger, counters, listenFds, ...rest } = options;
    super(resolveServerOptions(rest), logger);
    this.#fds = listenFds ?? {};
    if (this.options.mode === 'fork' || this.options.mode === 'cluster') {
      throw new InvalidOptionError(
        `HeloServer runs the event-loop and sequential modes; use startServer()`,
      );
    }
    const { admission, perIpAfterHeader, insight, cpuWork } = internals;
    this.#cpuWork = cpuWork ?? null;
    this.counters = counters ?? new ServerCounters();
    this.#insight = insight ?? null;
    // The server that answers for itself on the HTTP port notes its latest records for the dashboard.
    this.#recent =
      this.options.httpPort !== null && insight === undefined ? new RecentRecords() : null;
    this.#store = this.#recent === null ? store : storeNotingRecent(store, this.#recent);
    const { proxyProtocol, maxConnections, maxConnectionsPerIp } = this.options;
    // A fork-mode child is given its admission and reads no header at accept.
    const perIp =
      perIpAfterHeader ??
      (proxyProtocol && admission === undefined && maxConnectionsPerIp > 0
        ? new ConnectionLimits(Infinity, maxConnectionsPerIp)
        : null);
    this.#atAccept =
      admission ?? new ConnectionLimits(maxConnections, perIp === null ? maxConnectionsPerIp : 0);
    this.#admission = perIp === null ? this.#atAccept : combinedAdmission(this.#atAccept, perIp);
    const isShuttingDown = (): boolean => this.isShuttingDown;
    this.#gate = new AdmissionGate(this.#admission, isShuttingDown);
    this.#acceptGate = new AdmissionGate(this.#atAccept, isShuttingDown);
    this.#afterHeader = perIp === null ? null : new AdmissionGate(perIp, isShuttingDown);
    this.#headerSlots = new HeldSlots(this.#atAccept);
    this.#opening = new HeldSlots(this.#admission);
    this.#onHttpPort = new HeldSlots(this.#admission);
    this.#waiting = new HeldSlots(this.#admission);
    this.#refused = new RefusedSockets(this.counters.rejected, this.logger);
  }

  /** The port actually bound (differs from `options.port` when that is 0). */
  get port(): number {
    return this.#tcp === null
      ? this.options.port
      : boundPort(this.#tcp.listener, this.options.port);
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

  /** The live connections, as a copy (for tests and, later, the dashboard). */
  get connections(): ReadonlySet<Connection> {
    return new Set(this.#connections.items());
  }

  /** Every address this server listens on: `tcp://…`, then `unix:…`, `tls://…`, `udp://…`, `ws://…`. */
  get urls(): string[] {
    const urls = [this.url, ...this.#transports.slice(1).map((transport) => transport.url)];
    if (this.#udp !== null) urls.push(this.#udp.url);
    if (this.#http !== null) urls.push(this.#http.wsUrl);
    return urls;
  }

  /** The HTTP port actually bound, or null without one. */
  get httpPort(): number | null {
    return this.#http?.port ?? null;
  }

  /** The UDP port actually bound, or null without UDP. */
  get udpPort(): number | null {
    return this.#udp?.port ?? null;
  }

  /** The TLS port actually bound, or null without TLS. */
  get tlsPort(): number | null {
    return this.#tls?.port ?? null;
  }

  // ---- Listeners ----------------------------------------------------------

  /** Opens every listener the options ask for; if one fails, closes the others. */
  async listen(): Promise<void> {
    const { host, port, unixPath, tlsPort, udpPort, httpPort } = this.options;
    const fds = this.#fds;
    const arrive = (socket: Socket, transport: StreamTransport): void =>
      this.#arrive(socket, transport);
    try {
      this.#tcp = await TcpTransport.listen({ host, port, fd: fds.tcp }, arrive);
      this.#transports.push(this.#tcp);
      if (unixPath !== null || fds.unix !== undefined) {
        const { UnixTransport } = await import('./transports/unix.js');
        const unix = { path: unixPath ?? '', mode: this.options.unixMode, fd: fds.unix };
        this.#transports.push(await UnixTransport.listen(unix, arrive));
      }
      if (udpPort !== null) await this.#listenUdp(udpPort);
      if (httpPort !== null) await this.#listenHttp(httpPort);
      if (tlsPort !== null) {
        const { TlsTransport } = await import('./transports/tls.js');
        this.#tls = await TlsTransport.listen(this.#tlsOptions(tlsPort), arrive, (raw, error) =>
          this.logger.debug(
            { peer: raw.remoteAddress, err: error.message },
            'TLS handshake failed',
          ),
        );
        this.#transports.push(this.#tls);
      }
    } catch (error) {
      for (const transport of this.#transports.splice(0)) void transport.close();
      await this.#udp?.close();
      await this.#http?.close();
      throw error;
    }
    for (const { listener } of this.#transports) {
      listener.on('error', (error) => this.logger.error({ err: error.message }, 'listener error'));
    }
    this.logger.info({ urls: this.urls, mode: this.options.mode }, 'listening');
  }

  async #listenUdp(port: number): Promise<void> {
    const { UdpEndpoint } = await import('./transports/udp.js');
    const { host, maxLineBytes, shutdownGraceMs } = this.options;
    this.#udp = await UdpEndpoint.bind(
      { host, port, maxLineBytes, shutdownGraceMs, fd: this.#fds.udp },
      {
        store: this.#store,
        logger: this.logger,
        newSessionId: () => this.newSessionId(),
        isShuttingDown: () => this.isShuttingDown,
        counters: this.counters,
      },
    );
  }

  async #listenHttp(port: number): Promise<void> {
    const { HttpListener } = await import('./http-listener.js');
    this.#webSocketStream = (await import('./transports/websocket.js')).webSocketStream;
    this.#http = await HttpListener.listen(
      {
        host: this.options.host,
        port,
        fd: this.#fds.http,
        wsOrigins: this.options.wsOrigins,
        token: this.options.httpToken,
        maxMessageBytes: Math.max(this.options.maxLineBytes + 2, 1 << 20),
        // Short, whatever --idle-timeout says: a page's connections are cheap to reopen.
        idleTimeoutMs: Math.min(this.options.idleTimeoutMs || HTTP_IDLE_MS, HTTP_IDLE_MS),
      },
      {
        admit: (socket, go) => this.#admitHttp(socket, go),
        onWebSocket: (ws, request) => this.#serveWebSocket(ws, request),
      },
      {
        insight: this.#insight ?? (await this.#openObservatory()),
        isShuttingDown: () => this.isShuttingDown,
        readinessAnswered: (status) => this.#balancerDrain.readinessAnswered(status),
        logger: this.logger,
        counters: this.counters,
      },
    );
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

  #tlsOptions(port: number): TlsTransportOptions {
    const { host, tlsCertPath, tlsKeyPath, tlsCaPath } = this.options;
    return {
      host,
      port,
      files: { certPath: tlsCertPath!, keyPath: tlsKeyPath!, caPath: tlsCaPath },
      requireClientCert: this.options.tlsRequireClientCert,
      handshakeTimeoutMs: this.options.tlsHandshakeTimeoutMs,
      fd: this.#fds.tls,
    };
  }

  /**
   * Reads the TLS certificate files again (SIGHUP): new connections use the
   * new ones. A failure is logged and the old certificates stay in use.
   */
  override reloadTls(): void {
    if (this.#tls === null) return;
    try {
      this.#tls.handshaker.reload();
      this.logger.info('TLS certificates reloaded');
    } catch (error) {
      this.logger.error(
        { err: error instanceof Error ? error.message : String(error) },
        'TLS certificates not reloaded; the previous ones stay in use',
      );
    }
  }

  // ---- Admission ----------------------------------------------------------

  /**
   * Every stream socket of every listener (TCP, Unix, TLS) comes in here:
   * the one place for a stage that must come first (a PROXY-protocol
   * header, read before the TLS handshake: the connection limit is taken
   * before it, the per-IP limit after it, docs/PROTOCOL.md §10). Then the
   * transport opens the socket (TLS: the handshake, so handshakes
   * cannot get around the limits) while it holds its slot in `#opening`.
   */
  #arrive(socket: Socket, transport: StreamTransport): void {
    this.#arrivals += 1;
    // During a shutdown only the sockets the kernel had queued arrive
    // (#takeQueued): admitted like the rest, then served as shutdown serves
    // every session (#startSession). (Only then: the gate's option also
    // changes how a probe gone before a cluster primary's answer counts.)
    const duringShutdown = this.isShuttingDown;
    if (this.options.proxyProtocol) {
      if (!this.#isTrustedSource(socket, transport.name)) return;
      const acceptedAt = Date.now();
      // §10: the connection limit at accept, so a socket reading its header holds a slot.
      this.#acceptGate.decide(
        socket,
        socket.remoteAddress ?? '',
        (ip) => {
          // A socket closed while its header is read (a refusal, the timeout) gives the slot back here.
          this.#headerSlots.hold(socket, ip, null);
          this.#readProxyHeader(
            socket,
            transport.name,
            (client) => this.#afterProxyHeader(socket, transport, client),
            acceptedAt,
          );
        },
        (reason) => this.#refuse(socket, transport, reason),
        { duringShutdown },
      );
      return;
    }
    this.#gate.decide(
      socket,
      socket.remoteAddress ?? '',
      (ip) => this.#open(socket, transport, ip, null),
      (reason) => this.#refuse(socket, transport, reason),
      { duringShutdown },
    );
  }

  /** §10: the per-IP limit, once the header has named the client. */
  #afterProxyHeader(socket: Socket, transport: StreamTransport, client: ProxiedClient): void {
    if (this.#afterHeader === null) {
      this.#headerSlots.take(socket);
      this.#open(socket, transport, client.ip, client);
      return;
    }
    this.#afterHeader.decide(
      socket,
      client.ip,
      (ip) => {
        this.#headerSlots.take(socket);
        this.#open(socket, transport, ip, client);
      },
      (reason) => {
        if (this.#headerSlots.take(socket) !== undefined) this.#atAccept.release(client.ip);
        this.#refuse(socket, transport, reason, client);
      },
      // Admitted at accept: the header finishing during a shutdown does not
      // make it a newcomer (see #open).
      { duringShutdown: this.isShuttingDown },
    );
  }

  /** An admitted socket: the transport opens it (TLS: the handshake) while it holds its slot. */
  #open(
    socket: Socket,
    transport: StreamTransport,
    ip: string,
    client: ProxiedClient | null,
  ): void {
    let isOpened = false;
    transport.open(socket, (stream, clientCert) => {
      isOpened = true;
      // From here the slot is the session's. (A socket that closed before
      // this, a failed or timed-out handshake, gave it back in #opening;
      // one opened at once was never held, and take() finds nothing.)
      this.#opening.take(socket);
      // Opened during a shutdown (a PROXY header that completed, a socket
      // taken from the queue): served like a connection accepted a moment
      // before it (#startSession), not refused unread.
      const proxied = client === null ? {} : { peer: client.peer, proxy: client.proxy };
      this.#admit(stream, ip, { transport: transport.name, clientCert, ...proxied });
    });
    // TCP and Unix sockets open at once: no wait to hold a slot through
    // (a listener and a map entry per connection, docs/PERFORMANCE.md). A
    // close is always emitted on a later tick, so holding after open() misses none.
    if (!isOpened) this.#opening.hold(socket, ip, null);
  }

  #refuse(
    socket: Socket,
    transport: StreamTransport,
    reason: RejectReason,
    client?: ProxiedClient,
  ): void {
    if (transport.repliesToRefusals) {
      this.#refused.refuse(socket, reason, client);
    } else {
      this.counters.refused(reason);
      socket.destroy();
    }
  }

  /**
   * docs/PROTOCOL.md §10: from a trusted source (`#isTrustedSource`) the
   * header is read within --proxy-timeout of accept. Any refusal closes the socket
   * without a reply, counted (`reason="proxy"`) and logged once.
   */
  #readProxyHeader(
    socket: Socket,
    transport: Transport,
    go: (client: ProxiedClient) => void,
    /** §10: the timeout counts from accept (a cluster worker may have waited for a slot). */
    acceptedAt = Date.now(),
  ): void {
    const ownPeer = peerOf(socket, transport);
    const reading = this.#readingHeader.add(socket);
    const timeoutMs = this.options.proxyTimeoutMs - (Date.now() - acceptedAt);
    readProxyHeader(socket, Math.max(0, timeoutMs), (header, reason) => {
      this.#readingHeader.delete(reading);
      if (header === null) {
        this.#refuseProxy(socket, transport, reason);
      } else {
        const client = proxiedClient(header, ownPeer, socket.remoteAddress ?? '');
        this.logger.debug(
          { peer: client.peer, proxy: client.proxy, transport },
          'PROXY header read',
        );
        go(client);
      }
      this.#checkAllClosed();
    });
  }

  /** §10: a TCP or TLS source outside --proxy-allow is closed at once, unread. */
  #isTrustedSource(socket: Socket, transport: Transport): boolean {
    this.#proxyAllow ??= proxyAllowList(this.options.proxyAllow);
    if (transport === 'unix' || isTrustedSource(this.#proxyAllow, socket.remoteAddress)) {
      return true;
    }
    this.#refuseProxy(socket, transport, 'source not in --proxy-allow');
    return false;
  }

  #refuseProxy(socket: Socket, transport: Transport, reason: string): void {
    const peer = peerOf(socket, transport);
    socket.destroy();
    this.counters.refused('proxy');
    this.logger.warn({ peer, transport, reason }, 'connection refused: PROXY protocol');
  }

  /**
   * Serves a connected socket handed over by another process (fork mode,
   * which names the session) or taken from any listener (tests).
   */
  serveSocket(socket: Socket, info: SessionInfo = {}): void {
    // A fork-mode child reads the PROXY header itself: the parent never reads a byte.
    if (this.options.proxyProtocol && info.proxy === undefined && !this.isShuttingDown) {
      if (!this.#isTrustedSource(socket, info.transport ?? 'tcp')) return;
      this.#readProxyHeader(socket, info.transport ?? 'tcp', (client) =>
        this.#serveSocket(socket, { ...info, peer: client.peer, proxy: client.proxy }, client.ip),
      );
      return;
    }
    this.#serveSocket(socket, info, socket.remoteAddress ?? '');
  }

  #serveSocket(socket: Socket, info: SessionInfo, ip: string): void {
    this.#gate.decide(
      socket,
      ip,
      (ip) => this.#admit(socket, ip, info),
      (reason) => {
        const { peer, proxy } = info;
        this.#refused.refuse(socket, reason, peer && proxy ? { peer, proxy } : undefined);
      },
    );
  }

  /** Every HTTP connection takes a slot as it arrives, even during shutdown: /readyz says 503 meanwhile. */
  #admitHttp(socket: Socket, go: (refusal: string | null) => void): void {
    this.#gate.decide(
      socket,
      socket.remoteAddress ?? '',
      (ip) => {
        this.#onHttpPort.hold(socket, ip, null);
        go(null);
      },
      (reason) => {
        this.counters.refused(reason);
        go('503 Service Unavailable');
      },
      { duringShutdown: true },
    );
  }

  /** A WebSocket on /ws: the same Connection as a socket, over one message per line (§7). */
  #serveWebSocket(ws: WebSocket, request: IncomingMessage): void {
    const raw = request.socket;
    const ip = this.#onHttpPort.take(raw)?.ip ?? raw.remoteAddress ?? '';
    const stream = this.#webSocketStream!(ws, request, this.logger);
    if (this.isShuttingDown) {
      this.#admission.release(ip);
      this.#refused.refuse(stream, 'shutdown');
      return;
    }
    this.#admit(stream, ip, { transport: 'ws' });
  }

  // ---- Sessions -----------------------------------------------------------

  #admit(socket: StreamSocket, ip: string, info: SessionInfo): void {
    const transport = info.transport ?? 'tcp';
    const mustWait =
      this.options.mode === 'sequential' && (this.#connections.size > 0 || this.#waiting.size > 0);
    // Nobody starts waiting during a shutdown: 503 BUSY, as the waiting get.
    if (mustWait && this.isShuttingDown) {
      this.#admission.release(ip);
      this.#refused.refuse(socket, 'shutdown');
      return;
    }
    this.counters.connectionOpened(transport);
    if (mustWait) {
      this.#wait(socket, ip, info);
      return;
    }
    this.#startSession(socket, ip, info);
  }

  #startSession(socket: StreamSocket, ip: string, info: SessionInfo): void {
    const id = info.session ?? this.newSessionId();
    // Set right below, once the connection exists: it closes on a later turn, never inside its constructor.
    // eslint-disable-next-line prefer-const -- the closure below captures it before it is assigned
    let listed: ListEntry<Connection> | undefined;
    const connection = new Connection(socket, id, {
      options: this.options,
      store: this.#store,
      logger: this.logger,
      counters: this.counters,
      transport: info.transport ?? 'tcp',
      clientCert: info.clientCert ?? null,
      peer: info.peer ?? null,
      proxy: info.proxy ?? null,
      cpuWork: this.#cpuWork,
      onClose: (_closed, summary) => this.#connectionOnClose(listed!, summary, ip),
    });
    listed = this.#connections.add(connection);
    // The PROXY stage paused the socket with the session's first bytes put back (§10).
    if (info.proxy !== undefined) socket.resume();
    // Opened during a shutdown (#open): answer what it sent, then 503 BUSY.
    if (this.isShuttingDown) connection.shutdown();
  }

  /** Sequential mode: the client is connected; its turn comes when those before it leave. */
  #wait(socket: StreamSocket, ip: string, info: SessionInfo): void {
    // A client that gives up while waiting leaves the queue. Its FIN shows as
    // 'end' only once everything it sent before has been read, so a client
    // that sent requests and then half-closed keeps its place (and replies).
    const socketOnEnd = (): void => void socket.destroy();
    socket.on('error', ignoreError);
    socket.once('end', socketOnEnd);
    this.#waiting.hold(socket, ip, { info, socketOnEnd }, () => {
      this.counters.connectionClosed(info.transport ?? 'tcp');
      this.#checkAllClosed();
    });
    this.logger.info(
      { peer: info.peer ?? peerOf(socket, info.transport ?? 'tcp'), waiting: this.#waiting.size },
      'client waiting for its turn',
    );
  }

  #serveNextWaiting(): void {
    if (this.#connections.size > 0) return;
    const socket = this.#waiting.oldest() as StreamSocket | undefined;
    if (socket === undefined) return;
    const { ip, data: waiting } = this.#waiting.take(socket)!;
    socket.off('end', waiting.socketOnEnd);
    socket.off('error', ignoreError);
    this.logger.info(
      {
        peer: waiting.info.peer ?? peerOf(socket, waiting.info.transport ?? 'tcp'),
        waiting: this.#waiting.size,
      },
      'waiting client served',
    );
    this.#startSession(socket, ip, waiting.info);
  }

  #connectionOnClose(listed: ListEntry<Connection>, summary: ConnectionSummary, ip: string): void {
    this.#connections.delete(listed);
    this.counters.connectionClosed(summary.transport);
    this.#payloadsStored += summary.payloads;
    this.#admission.release(ip);
    if (!this.isShuttingDown) this.#serveNextWaiting();
    this.#checkAllClosed();
  }

  // ---- Shutdown -----------------------------------------------------------

  /**
   * Graceful shutdown (README, signals): `503 BUSY` to idle and waiting
   * sessions, stop accepting (once a balancer that health-checks this server
   * has let go of it: balancer-drain.ts), answer what was received, and
   * resolve once every connection is closed (busy ones are cut off after
   * `shutdownGraceMs`).
   */
  protected async shutdown(): Promise<void> {
    this.logger.info(
      { connections: this.#connections.size, waiting: this.#waiting.size },
      'shutting down',
    );
    // Waiting clients were never served: they get 503 BUSY, like idle ones.
    for (const socket of this.#waiting.sockets()) {
      const { ip, data: waiting } = this.#waiting.take(socket)!;
      this.counters.connectionClosed(waiting.info.transport ?? 'tcp');
      this.#admission.release(ip);
      this.#refused.refuse(socket, 'shutdown');
    }
    for (const connection of this.#connections.items()) connection.shutdown();
    const cancelGrace = this.afterGrace(() => {
      for (const connection of this.#connections.items()) connection.destroy();
    });
    // Connections that come meanwhile are served as during any shutdown
    // (#open). A listener systemd passed (socket activation) stays open in
    // systemd when ours closes: what is queued waits for the next server.
    if (this.#fds.tcp === undefined) {
      await this.#balancerDrain.untilLetGo(() => this.#arrivals);
    }
    await this.#takeQueued();
    const listenersClosed = Promise.all(this.#transports.map((transport) => transport.close()));
    for (const socket of this.#opening.sockets()) socket.destroy();
    // A socket still reading its PROXY header was accepted a moment ago; a
    // balancer sends the header and the client's first bytes right behind
    // the connect, so they are most likely in flight. It gets the moment a
    // just-accepted connection gets (connection.ts), then it is served like
    // one (#startSession); cut off only if its header is still incomplete.
    const headerWait = setTimeout(() => {
      for (const socket of this.#readingHeader.items()) socket.destroy();
    }, PROXY_HEADER_WAIT_MS);
    const allClosed = new Promise<void>((resolve) => {
      this.#onAllClosed = resolve;
      this.#checkAllClosed();
    });
    // Datagrams get 503 BUSY from now on; appends in flight finish first.
    const udpClosed = this.#udp?.close();
    await allClosed;
    await udpClosed;
    // The HTTP port closes last: until now `/readyz` has been answering 503.
    await this.#http?.close();
    this.#observatory?.close();
    cancelGrace();
    clearTimeout(headerWait);
    this.#refused.destroyAll();
    await listenersClosed;
    this.logger.info('server closed');
  }

  /**
   * Closing a listener resets the connections the kernel has accepted for
   * it but this process has not taken yet: behind a balancer, clients it had
   * just sent here (their sessions already forwarded), cut off with nothing
   * said. So the listeners close only after a turn of the event loop that
   * took no new socket (at most 10 turns; readiness is already 503).
   * Two `setImmediate`s make one turn: the rest of this poll phase, then a
   * whole new one.
   */
  async #takeQueued(): Promise<void> {
    for (let turn = 0; turn < 10; turn += 1) {
      const before = this.#arrivals;
      await nextTurn();
      await nextTurn();
      if (this.#arrivals === before) return;
    }
  }

  #checkAllClosed(): void {
    if (
      this.#connections.size === 0 &&
      this.#waiting.size === 0 &&
      this.#readingHeader.size === 0
    ) {
      this.#onAllClosed?.();
    }
  }
}

/** What a waiting socket will need when its turn comes. */
interface WaitingSession {
  readonly info: SessionInfo;
  readonly socketOnEnd: () => void;
}

function ignoreError(): void {}

/** How long a shutdown lets a socket finish its PROXY header (ms), as connection.ts's FIRST_BYTES_MS. */
const PROXY_HEADER_WAIT_MS = 100;

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
