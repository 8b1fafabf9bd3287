/**
 * The HTTP port (`--http-port`, cli.md): WebSocket on `/ws` (protocol.md
 * §7), sharing the port with the web pages to come.
 *
 * Browsers let any web page open a WebSocket to any address, sending the
 * page's origin in the `Origin` header. So an upgrade is accepted only
 * without an `Origin` (a program, not a browser), from the server's own
 * web client origin, or from an origin listed with `--ws-origin`; any other
 * gets HTTP 403 before the upgrade, and a page on another site cannot use
 * its visitor's browser to talk to helo.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import { ListenError } from '../errors.js';
import { describeListenError, formatHostPort } from './listener.js';

export interface HttpListenerOptions {
  readonly host: string;
  readonly port: number;
  /** Extra browser origins allowed on `/ws`, e.g. `https://lab.example.org`. */
  readonly wsOrigins: readonly string[];
  /** Largest WebSocket message accepted, in bytes (a line plus its terminator). */
  readonly maxMessageBytes: number;
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
  #allowedOrigins: ReadonlySet<string> = new Set();

  private constructor(options: HttpListenerOptions, handlers: WebSocketHandlers) {
    this.#options = options;
    this.#server = createServer((request, response) => this.#onRequest(request, response));
    this.#wss = new WebSocketServer({ noServer: true, maxPayload: options.maxMessageBytes });
    this.#server.on('upgrade', (request: IncomingMessage, socket: Socket, head: Buffer) => {
      socket.on('error', () => socket.destroy());
      if (new URL(request.url ?? '/', 'http://x').pathname !== WS_PATH) {
        refuse(socket, '404 Not Found', 'WebSocket is served on /ws only');
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
  ): Promise<HttpListener> {
    const listener = new HttpListener(options, handlers);
    await new Promise<void>((resolve, reject) => {
      const onError = (error: NodeJS.ErrnoException): void =>
        reject(
          new ListenError(describeListenError(error, options.host, options.port), { cause: error }),
        );
      listener.#server.once('error', onError);
      listener.#server.listen({ host: options.host, port: options.port }, () => {
        listener.#server.off('error', onError);
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
      this.#server.closeIdleConnections();
    });
  }

  #onRequest(_request: IncomingMessage, response: ServerResponse): void {
    // The web client and dashboard come here later; /ws needs an upgrade.
    response.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
    response.end('Not found. The protocol is on /ws (WebSocket).\n');
  }
}

function refuse(socket: Socket, status: string, reason: string): void {
  socket.end(
    `HTTP/1.1 ${status}\r\nContent-Type: text/plain\r\nContent-Length: ${Buffer.byteLength(reason) + 1}\r\n` +
      `Connection: close\r\n\r\n${reason}\n`,
  );
}
