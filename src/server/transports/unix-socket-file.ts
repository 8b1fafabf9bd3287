/**
 * The socket file of a Unix domain socket listener (`--unix PATH`, unix.ts).
 *
 * The path is a file, and it outlives a server that crashes. Starting again
 * on a stale file must work, but two things must never happen: deleting
 * the socket of a server that is still running, and deleting something that
 * is not a socket at all (a typo in `--unix` must not cost a user a file).
 * So when the path is taken it is examined: a socket nobody answers on is
 * stale and is replaced; anything else is reported.
 *
 * Two more rules (docs/SECURITY.md):
 * - The socket is never reachable with looser permissions than
 *   `--unix-mode`. bind() creates the file with the umask's mode and
 *   chmod() can only follow, so the socket is bound inside a private
 *   directory (0700) next to PATH, given its mode there, and only then
 *   linked to PATH: it appears there with its final mode.
 * - At exit only this server's own socket is removed. libuv unlinks the
 *   path it bound when the listener closes, whatever is there by then; here
 *   that is the private name, gone or harmless, and PATH itself is removed
 *   only if it is still the socket (same device and inode) placed there.
 */
import {
  chmodSync,
  linkSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  renameSync,
  rmdirSync,
  unlinkSync,
} from 'node:fs';
import { connect, type Server } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { ListenError } from '../../errors.js';

/**
 * A socket bound in a private directory next to its public path, then put
 * in place with its final mode. One per listening socket.
 */
export class PrivateUnixSocket {
  /** Identity of the socket placed at `path`, once placed. */
  #placed: { dev: number; ino: number } | null = null;

  private constructor(
    readonly path: string,
    readonly directory: string,
  ) {}

  /** Where to bind: inside a directory only this user can enter. */
  get bindPath(): string {
    return join(this.directory, 's');
  }

  /** Makes the private directory (mkdtemp: mode 0700, a fresh name). */
  static create(path: string): PrivateUnixSocket {
    try {
      return new PrivateUnixSocket(
        path,
        mkdtempSync(join(dirname(path), `.${basename(path)}.helo-`)),
      );
    } catch (error) {
      throw new ListenError(describeUnixListenError(error, path), { cause: error });
    }
  }

  /**
   * Gives the bound socket `mode` and links it to the public path, which
   * must be free, a stale socket, or this object's own earlier socket (a
   * cluster whose workers all died binds again). link() never replaces an
   * existing file, so a file that appears meanwhile is not lost either.
   */
  async place(mode: number | null): Promise<void> {
    const { path, bindPath } = this;
    try {
      if (mode !== null) chmodSync(bindPath, mode);
    } catch (error) {
      throw new ListenError(
        `cannot set the permissions of ${path}: ${describeUnixListenError(error, path)}`,
      );
    }
    for (let attempt = 0; ; attempt++) {
      try {
        linkSync(bindPath, path);
        break;
      } catch (error) {
        const code = (error as NodeJS.ErrnoException).code;
        if (code !== 'EEXIST' || attempt > 0) {
          throw new ListenError(describeUnixListenError(error, path), { cause: error });
        }
      }
      if (this.#isOurs()) {
        // Our own socket, dead now: replace it in one step.
        renameSync(bindPath, path);
        break;
      }
      await removeStaleUnixSocket(path);
    }
    unlinkIfPresent(bindPath);
    const stat = lstatSync(path);
    this.#placed = { dev: stat.dev, ino: stat.ino };
  }

  /** `place`, if a socket is bound at the private path and not placed yet. */
  async placeIfBound(mode: number | null): Promise<void> {
    if (lstatSync(this.bindPath, { throwIfNoEntry: false })?.isSocket() === true) {
      await this.place(mode);
    }
  }

  /** Removes the public path if it is still our socket, and the private directory. */
  release(): void {
    if (this.#isOurs()) unlinkIfPresent(this.path);
    this.#placed = null;
    unlinkIfPresent(this.bindPath);
    try {
      rmdirSync(this.directory);
    } catch {
      // Not empty or gone: not ours to force.
    }
  }

  #isOurs(): boolean {
    const placed = this.#placed;
    if (placed === null) return false;
    const now = lstatSync(this.path, { throwIfNoEntry: false });
    return now !== undefined && now.isSocket() && now.dev === placed.dev && now.ino === placed.ino;
  }
}

function unlinkIfPresent(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}

export function listenOn(server: Server, path: string): Promise<void> {
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
  removeLeftoverDirectories(path);
}

/**
 * A server killed with SIGKILL leaves, next to its stale socket, the empty
 * private directory it bound in; rmdir() removes only empty ones.
 */
function removeLeftoverDirectories(path: string): void {
  const prefix = `.${basename(path)}.helo-`;
  let names: string[];
  try {
    names = readdirSync(dirname(path));
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    try {
      rmdirSync(join(dirname(path), name));
    } catch {
      // Not empty (a server binding right now), not ours, or gone.
    }
  }
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

export function describeUnixListenError(error: unknown, path: string): string {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'EACCES':
      return `cannot listen on unix:${path}: permission denied`;
    case 'ENOENT':
      return `cannot listen on unix:${path}: the directory does not exist`;
    case 'EADDRINUSE':
    case 'EEXIST':
      return `cannot listen on unix:${path}: it is in use`;
    default:
      return `cannot listen on unix:${path}: ${error instanceof Error ? error.message : String(error)}`;
  }
}
