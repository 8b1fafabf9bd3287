/**
 * Unix domain sockets (`--unix PATH`): the same byte stream as TCP, between
 * processes of one machine, found by a path instead of a port. How the
 * socket file is placed and removed safely is unix-socket-file.ts.
 */
import cluster from 'node:cluster';
import { createServer, type Server, type Socket } from 'node:net';
import { ListenError } from '../../errors.js';
import type { StreamSocket } from '../connection.js';
import { closeListener, type Arrive, type StreamTransport } from './transport.js';
import { describeUnixListenError, listenOn, PrivateUnixSocket } from './unix-socket-file.js';

export interface UnixListenerOptions {
  readonly path: string;
  /** File permissions for the socket, e.g. 0o660; null leaves the umask's. */
  readonly mode: number | null;
  /** A listening socket passed by socket activation (activation.ts): used instead of binding. */
  readonly fd?: number | undefined;
}

/**
 * Set by a cluster primary for its workers: the private path they listen
 * on (they share one socket, which the primary then puts in place).
 */
export const UNIX_BIND_PATH_ENV = 'HELO_UNIX_BIND_PATH';

/** Every socket is served as it is, like TCP. */
export class UnixTransport implements StreamTransport {
  readonly name = 'unix';
  readonly repliesToRefusals = true;

  private constructor(
    readonly listener: Server,
    readonly path: string,
  ) {}

  static async listen(options: UnixListenerOptions, arrive: Arrive): Promise<UnixTransport> {
    const listener = await listenUnix(options, (socket) => arrive(socket, transport));
    // A passed socket was placed by the service manager: its path is whatever it bound.
    const address = listener.address();
    const path = options.fd === undefined || typeof address !== 'string' ? options.path : address;
    const transport = new UnixTransport(listener, path);
    return transport;
  }

  get url(): string {
    return `unix:${this.path}`;
  }

  open(socket: Socket, ready: (stream: StreamSocket, clientCert: null) => void): void {
    ready(socket, null);
  }

  close(): Promise<void> {
    return closeListener(this.listener);
  }
}

export async function listenUnix(
  options: UnixListenerOptions,
  onConnection: (socket: Socket) => void,
): Promise<Server> {
  // allowHalfOpen: a client's FIN must not stop the replies it is owed (§2).
  const server = createServer({ allowHalfOpen: true }, onConnection);
  if (options.fd !== undefined) {
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen({ fd: options.fd }, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      throw new ListenError(`cannot listen on the passed socket (fd ${options.fd}): ${reason}`, {
        cause: error,
      });
    }
    return server;
  }
  const sharedBindPath = cluster.isWorker ? process.env[UNIX_BIND_PATH_ENV] : undefined;
  if (sharedBindPath !== undefined) {
    // A cluster worker: the primary owns the public path (cluster/cluster-server.ts).
    try {
      await listenOn(server, sharedBindPath);
    } catch (error) {
      throw new ListenError(describeUnixListenError(error, options.path), { cause: error });
    }
    return server;
  }
  const socket = PrivateUnixSocket.create(options.path);
  try {
    await listenOn(server, socket.bindPath);
  } catch (error) {
    socket.release();
    throw new ListenError(describeUnixListenError(error, options.path), { cause: error });
  }
  try {
    await socket.place(options.mode);
  } catch (error) {
    server.close();
    socket.release();
    throw error;
  }
  server.once('close', () => socket.release());
  return server;
}
