/**
 * TCP: the plain byte stream, and the listener the others build on (TLS
 * listens on TCP too, fork mode hands TCP sockets to children). Start-up
 * failures become one clear line (docs/ERRORS.md: a port in use prints one
 * line on stderr naming the problem).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { ListenError } from '../../errors.js';
import { formatHostPort } from '../../net/host-port.js';
import type { StreamSocket } from '../connection.js';
import { closeListener, type Arrive, type StreamTransport } from './transport.js';

/** `--host`/`--port`: every socket is served as it is. */
export class TcpTransport implements StreamTransport {
  readonly name = 'tcp';
  readonly repliesToRefusals = true;

  private constructor(
    readonly listener: Server,
    readonly host: string,
  ) {}

  static async listen(options: TcpListenerOptions, arrive: Arrive): Promise<TcpTransport> {
    const listener = await listenTcp(options, (socket) => arrive(socket, transport));
    const transport = new TcpTransport(
      listener,
      options.fd === undefined ? options.host : boundHost(listener, options.host),
    );
    return transport;
  }

  /** The port actually bound (differs from the one asked when that was 0). */
  get port(): number {
    return boundPort(this.listener, 0);
  }

  get url(): string {
    return tcpUrl(this.host, this.port);
  }

  open(socket: Socket, ready: (stream: StreamSocket, clientCert: null) => void): void {
    ready(socket, null);
  }

  close(): Promise<void> {
    return closeListener(this.listener);
  }
}

export interface TcpListenerOptions {
  readonly host: string;
  readonly port: number;
  /** Hand over sockets that have not started reading (to pass them to a child). */
  readonly pauseOnConnect?: boolean;
  /** A listening socket passed by socket activation (activation.ts): used instead of binding. */
  readonly fd?: number | undefined;
}

/** `tcp://127.0.0.1:7777`, the form every helo address takes. */
export function tcpUrl(host: string, port: number): string {
  return `tcp://${formatHostPort(host, port)}`;
}

/** Listens, or rejects with a `ListenError` that names the address and the problem. */
export async function listenTcp(
  options: TcpListenerOptions,
  onConnection: (socket: Socket) => void,
): Promise<Server> {
  const { host, port } = options;
  // allowHalfOpen: a client's FIN must not stop the replies it is owed (§2).
  const server = createServer(
    { allowHalfOpen: true, noDelay: true, pauseOnConnect: options.pauseOnConnect ?? false },
    onConnection,
  );
  await new Promise<void>((resolve, reject) => {
    const serverOnError = (error: NodeJS.ErrnoException): void => {
      const message =
        options.fd === undefined
          ? describeListenError(error, host, port)
          : `cannot listen on the passed socket (fd ${options.fd}): ${error.message}`;
      reject(new ListenError(message, { cause: error }));
    };
    server.once('error', serverOnError);
    const where = options.fd === undefined ? { host, port } : { fd: options.fd };
    server.listen({ ...where, backlog: 4096 }, () => {
      server.off('error', serverOnError);
      resolve();
    });
  });
  return server;
}

/** The address a listening server is bound to: a passed socket's may differ from `--host`. */
export function boundHost(server: Server, fallback: string): string {
  const address = server.address();
  return typeof address === 'object' && address !== null ? address.address : fallback;
}

/** The port a listening server actually bound (differs from the one asked when that was 0). */
export function boundPort(server: Server, fallback: number): number {
  const address = server.address();
  return typeof address === 'object' && address !== null ? address.port : fallback;
}

export function describeListenError(
  error: NodeJS.ErrnoException,
  host: string,
  port: number,
): string {
  const where = formatHostPort(host, port);
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
