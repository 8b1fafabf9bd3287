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
 */
import { timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import type { Logger } from 'pino';
import { ListenError } from '../errors.js';
import { EventsStream } from './http/events-stream.js';
import { WebClientAssets } from './http/web-client.js';
import { describeListenError, formatHostPort } from './listener.js';
import type { Insight } from './observe/observatory.js';

export interface HttpListenerOptions {
  readonly host: string;
  readonly port: number;
  /** Extra browser origins allowed on `/ws`, e.g. `https://lab.example.org`. */
  readonly wsOrigins: readonly string[];
  /** Largest WebSocket message accepted, in bytes (a line plus its terminator). */
  readonly maxMessageBytes: number;
  /** Required on every path but `/healthz` and `/readyz`; null = open (loopback). */
  readonly token: string | null;
}

/** What the pages other than `/ws` need from the server. */
export interface HttpPagesContext {
  readonly insight: Insight;
  /** True from the first moment of shutdown: `/readyz` answers 503 from then on. */
  readonly isShuttingDown: () => boolean;
  readonly logger: Logger;
}

export interface WebSocketHandlers {
  /**
   * Decides, before the upgrade, whether the connection may be served
   * (the connection limits); calls back with null to go on or a status
   * line to refuse with.
   */
  admit(socket: Socket, go: (refusal: string | null) => void): void;
  /** A WebSocket on `/ws` is open. */
  onWebSocket(ws: WebSocket, request: IncomingMessage): void;
}

const WS_PATH = '/ws';

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
  #allowedOrigins: ReadonlySet<string> = new Set();

  private constructor(
    options: HttpListenerOptions,
    handlers: WebSocketHandlers,
    pages: HttpPagesContext,
  ) {
    this.#options = options;
    this.#pages = pages;
    this.#events = new EventsStream(pages.insight, pages.logger);
    this.#server = createServer((request, response) => this.#onRequest(request, response));
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: options.maxMessageBytes });
    this.#server.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
      socket.on('error', () => socket.destroy());
      const url = requestUrl(request);
      if (url.pathname !== WS_PATH) {
        refuse(socket, '404 Not Found', 'WebSocket is served on /ws only');
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
      handlers.admit(socket, (refusal) => {
        if (refusal !== null) {
          refuse(socket, refusal, 'the server is busy');
          return;
        }
        this.#wss.handleUpgrade(request, socket, head, (ws) => handlers.onWebSocket(ws, request));
      });
    });
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
      listener.#server.listen({ host: options.host, port: options.port }, () => {
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

  /** Stops listening; WebSocket sessions are ended by their connections' own shutdown. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      this.#server.close(() => resolve());
      this.#events.closeAll();
      this.#server.closeIdleConnections();
    });
  }

  #onRequest(request: IncomingMessage, response: ServerResponse): void {
    const url = requestUrl(request);
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
        void this.#readiness().then(([status, text]) => sendText(response, status, text));
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

/** The request's path and query (the host part is a placeholder: only those two are read). */
function requestUrl(request: IncomingMessage): URL {
  return new URL(request.url ?? '/', 'http://x');
}

function refuse(socket: Socket, status: string, reason: string): void {
  socket.end(
    `HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(reason) + 1}\r\n` +
      `Connection: close\r\n\r\n${reason}\n`,
  );
}
