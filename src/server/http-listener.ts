/**
 * The HTTP port (`--http-port`, README and docs/WEB.md, docs/METRICS.md):
 *
 *   /                 the web client and dashboard (web/, http/web-client.ts)
 *   /ws               the protocol over WebSocket (docs/PROTOCOL.md §7), nothing else
 *   /events           the dashboard's live feed (http/events-stream.ts)
 *   /metrics          Prometheus text (observe/prometheus.ts)
 *   /healthz          200 while the process runs
 *   /readyz           200 when listening and the store is writable; 503 from
 *                     the first moment of shutdown
 *
 * Browsers let any web page open a WebSocket to any address, sending the
 * page's origin in the `Origin` header. So an upgrade is accepted only
 * without an `Origin` (a program, not a browser), from the server's own
 * web client origin, or from an origin listed with `--ws-origin`; any other
 * gets HTTP 403 before the upgrade, and a page on another site cannot use
 * its visitor's browser to talk to helo.
 *
 * Hostile input (docs/SECURITY.md): a request target that is not a path
 * gets 400 before anything else reads it; while no token is required, a
 * `Host` other than the server's own gets 421 (DNS rebinding); every
 * connection takes a place among `--max-connections` as it arrives, and one
 * that stays silent, or idles between requests, is closed.
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from 'pino';
import { ListenError } from '../errors.js';
import { EventsStream } from './http/events-stream.js';
import { WebClientAssets } from './http/web-client.js';
import { describeListenError } from './transports/tcp.js';
import { formatHostPort } from '../net/host-port.js';
import type { Insight } from './observe/observatory.js';
import { faultFields } from './fault-boundary.js';
import type { ServerRecorder } from './observe/server-counters.js';

export interface HttpListenerOptions {
  readonly host: string;
  readonly port: number;
  /** A listening socket passed by socket activation (transports/activation.ts): used instead of binding. */
  readonly fd?: number | undefined;
  /** Extra browser origins allowed on `/ws`, e.g. `https://lab.example.org`. */
  readonly wsOrigins: readonly string[];
  /** Largest WebSocket message accepted, in bytes (a line plus its terminator). */
  readonly maxMessageBytes: number;
  /** Required on every path but `/healthz` and `/readyz`; null = open (loopback). */
  readonly token: string | null;
  /**
   * A connection with nothing received or sent for this long is closed (ms);
   * between keep-alive requests it waits at most 5 s of it.
   */
  readonly idleTimeoutMs: number;
}

/** What the HTTP port records, among the server's counters (docs/METRICS.md). */
export type HttpRecorder = Pick<
  ServerRecorder,
  'httpIdleClosed' | 'eventsCutOff' | 'connectionFault'
>;

/** What the pages other than `/ws` need from the server. */
export interface HttpPagesContext {
  readonly insight: Insight;
  /** True from the first moment of shutdown: `/readyz` answers 503 from then on. */
  readonly isShuttingDown: () => boolean;
  /** Each `/readyz` answer's status: a balancer is watching (balancer-drain.ts). */
  readonly readinessAnswered: (status: number) => void;
  readonly logger: Logger;
  readonly counters: HttpRecorder;
}

export interface WebSocketHandlers {
  /**
   * Decides, as a connection arrives on the HTTP port, whether it may be
   * served (the connection limits, shared with the protocol's connections);
   * calls back with null to go on or a status line to refuse with. The place
   * is held until the socket closes; a WebSocket keeps that same place.
   */
  admit(socket: Socket, go: (refusal: string | null) => void): void;
  /** A WebSocket on `/ws` is open. */
  onWebSocket(ws: WebSocket, request: IncomingMessage): void;
}

const WS_PATH = '/ws';
/** Longest a request's headers, then the whole request, may take to arrive (ms). */
const REQUEST_TIMEOUT_MS = 10_000;
/** Longest an idle keep-alive connection waits for its next request (ms). */
const KEEP_ALIVE_TIMEOUT_MS = 5_000;
/** How long a refused socket may stay open to read its answer (ms). */
const REFUSED_LINGER_MS = 1_000;

/** The origins a browser page of this server itself would send. */
export function ownOrigins(host: string, port: number): string[] {
  const origins = [`http://${formatHostPort(host, port)}`];
  const isLoopback = host === '127.0.0.1' || host === '::1' || host === 'localhost';
  if (isLoopback)
    origins.push(`http://localhost:${port}`, `http://127.0.0.1:${port}`, `http://[::1]:${port}`);
  return origins;
}

/** True when a WebSocket upgrade with this `Origin` header may proceed (§7). */
export function isOriginAllowed(origin: string | undefined, allowed: ReadonlySet<string>): boolean {
  if (origin === undefined) return true;
  return allowed.has(origin.toLowerCase());
}

export class HttpListener {
  readonly #server: Server;
  readonly #wss: WebSocketServer;
  readonly #options: HttpListenerOptions;
  readonly #pages: HttpPagesContext;
  readonly #events: EventsStream;
  readonly #assets = WebClientAssets.load();
  readonly #handlers: WebSocketHandlers;
  #allowedOrigins: ReadonlySet<string> = new Set();
  /** `Host` values naming this server (lower case), checked while no token is required. */
  #ownHosts: ReadonlySet<string> = new Set();
  /** Open sockets of this port, but those handed on as WebSockets. */
  readonly #sockets = new Set<Socket>();
  /** Sockets refused by the limits: whatever they send is left unanswered. */
  readonly #refused = new WeakSet<Socket>();
  /** Sockets with a response under way, and how many (pipelining). */
  readonly #answering = new Map<Socket, number>();
  #isClosing = false;

  private constructor(
    options: HttpListenerOptions,
    handlers: WebSocketHandlers,
    pages: HttpPagesContext,
  ) {
    this.#options = options;
    this.#pages = pages;
    this.#handlers = handlers;
    this.#events = new EventsStream(pages.insight, pages.logger, 1_000, () => {
      pages.counters.eventsCutOff();
    });
    this.#server = createServer(
      {
        headersTimeout: REQUEST_TIMEOUT_MS,
        requestTimeout: REQUEST_TIMEOUT_MS,
        // Node checks both timeouts on this period (default 30 s, on top of them).
        connectionsCheckingInterval: 1_000,
      },
      (request, response) => this.#serverOnRequest(request, response),
    );
    this.#server.keepAliveTimeout = Math.min(KEEP_ALIVE_TIMEOUT_MS, options.idleTimeoutMs);
    // A socket that sends nothing at all is not a request for Node's timeouts above.
    this.#server.setTimeout(options.idleTimeoutMs, (socket: Socket) => {
      pages.counters.httpIdleClosed();
      socket.destroy();
    });
    this.#server.on('connection', (socket: Socket) => this.#serverOnConnection(socket));
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: options.maxMessageBytes });
    this.#server.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
      try {
        this.#serverOnUpgrade(request, socket, head);
      } catch (error) {
        this.#requestFailed(request, error);
        socket.destroy();
      }
    });
  }

  /** Every connection takes its place among the limits as it arrives. */
  #serverOnConnection(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => {
      this.#sockets.delete(socket);
      this.#answering.delete(socket);
    });
    let isDecided = false;
    let isPaused = false;
    this.#handlers.admit(socket, (refusal) => {
      isDecided = true;
      if (refusal !== null) {
        this.#refused.add(socket);
        refuse(socket, refusal, 'the server is busy');
      }
      if (isPaused) socket.resume();
    });
    // An answer that comes later (a cluster's primary): nothing is read meanwhile.
    if (!isDecided) {
      isPaused = true;
      socket.pause();
    }
  }

  #serverOnUpgrade(request: IncomingMessage, socket: Socket, head: Buffer): void {
    socket.on('error', () => socket.destroy());
    if (this.#refused.has(socket)) return;
    const url = parseTarget(request.url);
    if (url === null) {
      refuse(socket, '400 Bad Request', BAD_TARGET.trim());
      return;
    }
    if (url.pathname !== WS_PATH) {
      refuse(socket, '404 Not Found', 'WebSocket is served on /ws only');
      return;
    }
    if (!this.#isOwnHost(request)) {
      refuse(socket, '421 Misdirected Request', NOT_OWN_HOST.trim());
      return;
    }
    if (!this.#hasToken(request, url)) {
      refuse(socket, '401 Unauthorized', TOKEN_REQUIRED.trim());
      return;
    }
    if (!isOriginAllowed(request.headers.origin, this.#allowedOrigins)) {
      refuse(socket, '403 Forbidden', `origin ${request.headers.origin} is not allowed`);
      return;
    }
    if (this.#isClosing) {
      refuse(socket, '503 Service Unavailable', 'the server is shutting down');
      return;
    }
    // From here the WebSocket session owns the socket (and its place among the limits).
    this.#sockets.delete(socket);
    this.#wss.handleUpgrade(request, socket, head, (ws) => this.#handlers.onWebSocket(ws, request));
  }

  static async listen(
    options: HttpListenerOptions,
    handlers: WebSocketHandlers,
    pages: HttpPagesContext,
  ): Promise<HttpListener> {
    const listener = new HttpListener(options, handlers, pages);
    await new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void =>
        reject(
          new ListenError(describeListenError(error, options.host, options.port), { cause: error }),
        );
      listener.#server.once('error', onError);
      const where =
        options.fd === undefined ? { host: options.host, port: options.port } : { fd: options.fd };
      listener.#server.listen(where, () => {
        listener.#server.off('error', onError);
        // After start, an error is a failed accept (EMFILE: out of descriptors);
        // libuv closes that connection and keeps listening. Without a
        // listener the 'error' event would end the process.
        listener.#server.on('error', (error) =>
          pages.logger.error({ err: error.message }, 'HTTP listener error'),
        );
        resolve();
      });
    });
    const allowed = [...ownOrigins(options.host, listener.port), ...options.wsOrigins];
    listener.#allowedOrigins = new Set(allowed.map((origin) => origin.toLowerCase()));
    listener.#ownHosts = ownHosts(options.host, listener.port);
    return listener;
  }

  get port(): number {
    const address = this.#server.address();
    return typeof address === 'object' && address !== null ? address.port : this.#options.port;
  }

  /** `http://127.0.0.1:7778` */
  get url(): string {
    return `http://${formatHostPort(this.#options.host, this.port)}`;
  }

  /** `ws://127.0.0.1:7778/ws` */
  get wsUrl(): string {
    return `ws://${formatHostPort(this.#options.host, this.port)}${WS_PATH}`;
  }

  /**
   * Stops listening; responses under way are finished, then their sockets
   * closed; every other connection, a half-sent request included, is closed
   * at once. WebSocket sessions are ended by their connections' own shutdown.
   */
  close(): Promise<void> {
    this.#isClosing = true;
    const closed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
    this.#events.closeAll();
    for (const socket of this.#sockets) {
      if (!this.#answering.has(socket)) socket.destroy();
    }
    return closed;
  }

  #serverOnRequest(request: IncomingMessage, response: ServerResponse): void {
    const socket = request.socket;
    if (this.#refused.has(socket)) return;
    this.#answering.set(socket, (this.#answering.get(socket) ?? 0) + 1);
    response.once('close', () => {
      const left = (this.#answering.get(socket) ?? 1) - 1;
      if (left > 0) this.#answering.set(socket, left);
      else this.#answering.delete(socket);
      if (this.#isClosing && left <= 0) socket.destroy();
    });
    try {
      this.#onRequest(request, response);
    } catch (error) {
      this.#requestFailed(request, error);
      if (response.headersSent) socket.destroy();
      else sendText(response, 500, 'internal error\n', { connection: 'close' });
    }
  }

  /**
   * The one place an unexpected exception of a request ends: that request,
   * not the process (the same rule as a protocol connection's, fault-boundary.ts).
   */
  #requestFailed(request: IncomingMessage, error: unknown): void {
    this.#pages.counters.connectionFault();
    this.#pages.logger.error(
      { ...faultFields(error), method: request.method, url: request.url?.slice(0, 200) },
      'http request failed',
    );
  }

  #onRequest(request: IncomingMessage, response: ServerResponse): void {
    const url = parseTarget(request.url);
    if (url === null) {
      sendText(response, 400, BAD_TARGET, { connection: 'close' });
      return;
    }
    const pathname = url.pathname;
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      sendText(response, 405, 'Only GET and HEAD are served here.\n', { allow: 'GET, HEAD' });
      return;
    }
    // Probes say nothing about the data: they stay open to load balancers.
    switch (pathname) {
      case '/healthz':
        sendText(response, 200, 'ok\n');
        return;
      case '/readyz':
        this.#readiness()
          .then(([status, text]) => {
            this.#pages.readinessAnswered(status);
            sendText(response, status, text);
          })
          .catch((error: unknown) => {
            this.#requestFailed(request, error);
            response.destroy();
          });
        return;
    }
    if (!this.#isOwnHost(request)) {
      sendText(response, 421, NOT_OWN_HOST);
      return;
    }
    if (!this.#hasToken(request, url)) {
      sendText(response, 401, TOKEN_REQUIRED, { 'www-authenticate': 'Bearer realm="helo"' });
      return;
    }
    if (this.#options.token !== null && url.searchParams.get('token') === this.#options.token) {
      // The page opened with ?token=: its own requests (/ws, /events, files) carry the cookie.
      response.setHeader(
        'set-cookie',
        `${TOKEN_COOKIE}=${this.#options.token}; Path=/; HttpOnly; SameSite=Strict`,
      );
    }
    switch (pathname) {
      case '/metrics':
        this.#pages.insight.metrics().then(
          (text) => sendText(response, 200, text, { 'content-type': PROMETHEUS_CONTENT_TYPE }),
          (error: unknown) => sendText(response, 500, `metrics unavailable: ${String(error)}\n`),
        );
        return;
      case '/events':
        // HEAD asks only whether the feed is there: no stream to hold open.
        if (request.method === 'HEAD')
          sendText(response, 200, '', { 'content-type': EVENT_STREAM });
        else this.#events.subscribe(response);
        return;
      case WS_PATH:
        sendText(response, 426, 'The protocol on /ws is a WebSocket: upgrade required.\n', {
          upgrade: 'websocket',
        });
        return;
    }
    if (this.#assets.serve(pathname, request, response)) return;
    sendText(response, 404, 'Not found. Try / (web client), /ws, /metrics, /healthz, /readyz.\n');
  }

  /**
   * DNS rebinding: a page on evil.example whose name is made to resolve to
   * 127.0.0.1 reaches this port as its own origin, so the Origin check does
   * not stop it; its requests still say `Host: evil.example`. With a token,
   * such a page cannot have it; without one, only this server's own names
   * are served.
   */
  #isOwnHost(request: IncomingMessage): boolean {
    if (this.#options.token !== null) return true;
    const host = request.headers.host;
    return host !== undefined && this.#ownHosts.has(host.toLowerCase());
  }

  /**
   * With a token set, a request must carry it: `Authorization: Bearer T`
   * (programs, Prometheus), `?token=T` (the URL printed at start), or the
   * cookie set when the page was opened with it (the page's own requests).
   */
  #hasToken(request: IncomingMessage, url: URL): boolean {
    const expected = this.#options.token;
    if (expected === null) return true;
    const given = [
      /^Bearer (\S+)$/i.exec(request.headers.authorization ?? '')?.[1],
      url.searchParams.get('token'),
      cookieValue(request.headers.cookie, TOKEN_COOKIE),
    ];
    return given.some((token) => token != null && sameSecret(token, expected));
  }

  async #readiness(): Promise<[number, string]> {
    if (this.#pages.isShuttingDown()) return [503, 'shutting down\n'];
    try {
      if (!(await this.#pages.insight.storeWritable())) return [503, 'store not writable\n'];
    } catch {
      return [503, 'store state unknown\n'];
    }
    // Asked again: shutdown may have begun while the store was being asked.
    if (this.#pages.isShuttingDown()) return [503, 'shutting down\n'];
    return [200, 'ready\n'];
  }
}

const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';
const EVENT_STREAM = 'text/event-stream; charset=utf-8';
const TOKEN_COOKIE = 'helo_token';
const BAD_TARGET = 'The request target must be a path, such as /metrics.\n';
const NOT_OWN_HOST =
  'This server answers only to its own address (127.0.0.1, localhost, [::1] with its port).\n';
const TOKEN_REQUIRED =
  'This server needs its access token: open the URL it printed at start (/?token=...), ' +
  'or send "Authorization: Bearer TOKEN".\n';

/** Compares in constant time, so response timing does not reveal the token. */
function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookieValue(header: string | undefined, name: string): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [key, ...value] = part.trim().split('=');
    if (key === name) return value.join('=');
  }
  return undefined;
}

function sendText(
  response: ServerResponse,
  status: number,
  text: string,
  headers: Record<string, string> = {},
): void {
  if (response.headersSent) return;
  response.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(text),
    ...headers,
  });
  response.end(response.req.method === 'HEAD' ? undefined : text);
}

/** The `Host` values of this server: its loopback names and `--host`, with the port. */
export function ownHosts(host: string, port: number): ReadonlySet<string> {
  const names = ['127.0.0.1', 'localhost', '::1', host.toLowerCase()];
  const hosts = new Set(names.map((name) => formatHostPort(name, port)));
  // A client leaves out the port when it is the scheme's default.
  if (port === 80) for (const name of names) hosts.add(name.includes(':') ? `[${name}]` : name);
  return hosts;
}

/**
 * An origin-form path and query: starts with one `/` (`//x` and `/\\x`
 * would name a host), visible ASCII only, every `%` followed by two hex
 * digits. Absolute-form (`http://h/`), `*` and anything else give null.
 */
const ORIGIN_FORM = /^\/(?![/\\])[^?\\]*(\?.*)?$/;
const VISIBLE_ASCII = /^[\x21-\x7e]*$/;
const BAD_PERCENT = /%(?![0-9a-f]{2})/i;

/** The request's path and query (the host part is a placeholder), or null when not a path. */
export function parseTarget(target: string | undefined): URL | null {
  if (target === undefined || !ORIGIN_FORM.test(target)) return null;
  if (!VISIBLE_ASCII.test(target) || BAD_PERCENT.test(target)) return null;
  let url: URL;
  try {
    url = new URL(target, 'http://x');
  } catch {
    return null;
  }
  return url.host === 'x' ? url : null;
}

/** Answers with a status line and closes; a socket that does not close is cut after a moment. */
function refuse(socket: Socket, status: string, reason: string): void {
  socket.end(
    `HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(reason) + 1}\r\n` +
      `Connection: close\r\n\r\n${reason}\n`,
  );
  const timer = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
  socket.once('close', () => clearTimeout(timer));
}
