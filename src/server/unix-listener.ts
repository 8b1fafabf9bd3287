/**
 * A Unix domain socket listener (`--unix PATH`): the same byte stream as
 * TCP, between processes of one machine, found by a path instead of a port.
 *
 * The path is a file, and it outlives a server that crashes. Starting again
 * on a stale file must work, but two things must never happen: deleting
 * the socket of a server that is still running, and deleting something that
 * is not a socket at all (a typo in `--unix` must not cost a user a file).
 * So on "address in use" the path is examined: a socket nobody answers on
 * is stale and is replaced; anything else is reported.
 */
import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { ListenError } from '../errors.js';

export interface UnixListenerOptions {
  readonly path: string;
  /** File permissions for the socket, e.g. 0o660; null leaves the umask's. */
  readonly mode: number | null;
}

export async function listenUnix(
  options: UnixListenerOptions,
  onConnection: (socket: Socket) => void,
): Promise<Server> {
  const { path } = options;
  // allowHalfOpen: a client's FIN must not stop the replies it is owed (§2).
  const server = createServer({ allowHalfOpen: true }, onConnection);
  try {
    await listenOn(server, path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'EADDRINUSE') throw new ListenError(describe(error, path), { cause: error });
    await removeStaleUnixSocket(path);
    try {
      await listenOn(server, path);
    } catch (again) {
      throw new ListenError(describe(again, path), { cause: again });
    }
  }
  // The file stays behind when the listener closes: remove it then, but
  // only if it is still this listener's (same inode), not a successor's.
  const inode = lstatSync(path, { throwIfNoEntry: false })?.ino;
  server.once('close', () => {
    const now = lstatSync(path, { throwIfNoEntry: false });
    if (now !== undefined && now.isSocket() && now.ino === inode) unlinkSync(path);
  });
  if (options.mode !== null) {
    try {
      chmodSync(path, options.mode);
    } catch (error) {
      server.close();
      throw new ListenError(`cannot set the permissions of ${path}: ${describe(error, path)}`);
    }
  }
  return server;
}

function listenOn(server: Server, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/**
 * Removes `path` only if it is a socket that no server answers on; throws
 * a `ListenError` if it is anything else, or a socket in use.
 */
export async function removeStaleUnixSocket(path: string): Promise<void> {
  const stat = lstatSync(path, { throwIfNoEntry: false });
  if (stat === undefined) return; // gone meanwhile
  if (!stat.isSocket()) {
    throw new ListenError(`cannot listen on unix:${path}: it exists and is not a socket`);
  }
  if (await isAnswered(path)) {
    throw new ListenError(`cannot listen on unix:${path}: another server is using it`);
  }
  unlinkSync(path);
}

function isAnswered(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    // ECONNREFUSED: a socket file with no server behind it.
    probe.once('error', () => resolve(false));
  });
}

function describe(error: unknown, path: string): string {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EACCES':
      return `cannot listen on unix:${path}: permission denied`;
    case 'ENOENT':
      return `cannot listen on unix:${path}: the directory does not exist`;
    case 'EADDRINUSE':
      return `cannot listen on unix:${path}: it is in use`;
    default:
      return `cannot listen on unix:${path}: ${error instanceof Error ? error.message : String(error)}`;
  }
}
