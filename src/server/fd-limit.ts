/**
 * The open-files limit (`ulimit -n`), checked at start (issue 6): every
 * connection holds a file descriptor, so a server allowed 10,000
 * connections by `--max-connections` but only 1,024 descriptors by the
 * operating system fails well before its own limit, and not with a clean
 * `503 BUSY`: its accepts fail with EMFILE and the clients are reset.
 *
 * Node raises its own soft limit to the hard limit when it starts (before
 * any of helo runs), so the soft limit read here is what the process really
 * has: a low one means the hard limit is low too, and only the shell, the
 * service manager or root can raise it, before Node starts.
 *
 * Reading is Linux-only (`/proc/self/limits`); elsewhere there is no check.
 * The decision is a pure function, so that its edges can be tested.
 */
import { readFileSync } from 'node:fs';

export interface OpenFilesLimit {
  /** What the process may open now; `Infinity` for `unlimited`. */
  readonly soft: number;
  /** How far an unprivileged process may raise it; `Infinity` for `unlimited`. */
  readonly hard: number;
}

/**
 * Descriptors the server uses besides its connections: stdio, the event
 * loop's own (epoll, eventfd, signal pipe), libuv's thread pool, the SQLite
 * database with its WAL and shared-memory files, log and IPC pipes.
 */
export const RESERVED_FILES = 64;

/** The row of /proc/PID/limits: `Max open files   1024   524288   files`. */
const MAX_OPEN_FILES = /^Max open files\s+(\S+)\s+(\S+)/m;

function limitValue(text: string): number | null {
  if (text === 'unlimited') return Infinity;
  const value = Number(text);
  return Number.isInteger(value) && value >= 0 ? value : null;
}

/** The open-files row of a /proc/PID/limits text, or null when it has none. */
export function parseOpenFilesLimit(limitsText: string): OpenFilesLimit | null {
  const match = MAX_OPEN_FILES.exec(limitsText);
  if (match === null) return null;
  const soft = limitValue(match[1]!);
  const hard = limitValue(match[2]!);
  if (soft === null || hard === null) return null;
  return { soft, hard };
}

/** This process's open-files limit, or null where it cannot be read (not Linux). */
export function readOpenFilesLimit(path = '/proc/self/limits'): OpenFilesLimit | null {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return null;
  }
  return parseOpenFilesLimit(text);
}

/** Descriptors a server needs for `maxConnections` connections on `listeners` listeners. */
export function filesNeeded(maxConnections: number, listeners: number): number {
  return maxConnections + listeners + RESERVED_FILES;
}

/**
 * The limit to suggest: twice the connections, rounded up to a thousand.
 * The second half is headroom: a refused connection holds a descriptor for
 * up to a second while it reads its `503 BUSY`, and fork mode holds a pipe
 * to each child besides its socket.
 */
export function suggestedLimit(maxConnections: number, listeners: number): number {
  const wanted = Math.max(2 * maxConnections, filesNeeded(maxConnections, listeners));
  return Math.ceil(wanted / 1000) * 1000;
}

/**
 * A one-line warning when the process cannot hold `maxConnections`
 * connections, or null when it can (or when the limit is unknown).
 */
export function openFilesWarning(
  limit: OpenFilesLimit | null,
  maxConnections: number,
  listeners: number,
): string | null {
  if (limit === null) return null;
  const needed = filesNeeded(maxConnections, listeners);
  if (limit.soft >= needed) return null;
  const suggested = suggestedLimit(maxConnections, listeners);
  const usable = Math.max(0, limit.soft - listeners - RESERVED_FILES);
  return (
    `open-files limit ${limit.soft} is below --max-connections ${maxConnections} ` +
    `(+ ${needed - maxConnections} for listeners and the server's own files): connections ` +
    `beyond about ${usable} may fail without a 503 BUSY; raise it before starting with ` +
    `\`ulimit -n ${suggested}\` (up to \`ulimit -Hn\`; beyond that as root), LimitNOFILE=${suggested} ` +
    'in a systemd unit or a nofile line in /etc/security/limits.conf, or lower --max-connections'
  );
}
