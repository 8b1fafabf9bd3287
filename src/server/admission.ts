/**
 * Admission: whether a new connection may be served at all (cli.md
 * `--max-connections`, `--max-connections-per-ip`), decided before any other
 * work is done for it, and what a refused socket gets (`503 BUSY`).
 *
 * The event-loop, sequential and fork models count their connections in one
 * process, so `ConnectionLimits` decides at once. A cluster's workers each
 * see only their own connections, so they ask through `Admission` too, with
 * an answer that may arrive later (see cluster/connection-slots.ts).
 */
import type { Duplex } from 'node:stream';
import { Replies } from '../core/replies.js';

export type RejectReason = 'max-connections' | 'max-connections-per-ip' | 'shutdown';

/** Where a server asks whether to serve a connection and reports when it ends. */
export interface Admission {
  /** null to serve the connection, otherwise why it is refused. */
  admit(ip: string): RejectReason | null | Promise<RejectReason | null>;
  /** An admitted connection has closed. */
  release(ip: string): void;
}

/** Exact limits for connections counted in one process. */
export class ConnectionLimits implements Admission {
  readonly #maxConnections: number;
  readonly #maxPerIp: number;
  readonly #perIp = new Map<string, number>();
  #current = 0;

  constructor(maxConnections: number, maxConnectionsPerIp: number) {
    this.#maxConnections = maxConnections;
    this.#maxPerIp = maxConnectionsPerIp;
  }

  admit(ip: string): RejectReason | null {
    if (this.#current >= this.#maxConnections) return 'max-connections';
    if (this.#maxPerIp > 0) {
      const fromIp = this.#perIp.get(ip) ?? 0;
      if (fromIp >= this.#maxPerIp) return 'max-connections-per-ip';
      this.#perIp.set(ip, fromIp + 1);
    }
    this.#current++;
    return null;
  }

  release(ip: string): void {
    this.#current--;
    if (this.#maxPerIp > 0) {
      const left = (this.#perIp.get(ip) ?? 1) - 1;
      if (left <= 0) this.#perIp.delete(ip);
      else this.#perIp.set(ip, left);
    }
  }
}

/** How long a refused connection may stay open to read its 503 BUSY. */
const REFUSED_LINGER_MS = 1_000;

function ignoreError(): void {}

/**
 * Answers `503 BUSY` and closes. The client gets a moment to read the reply,
 * however it behaves; then the socket goes, so refused sockets cannot pile up.
 * `onClosed` runs once the socket is gone.
 */
export function refuseSocket(socket: Duplex, onClosed?: () => void): void {
  socket.on('error', ignoreError);
  // Read (and drop) whatever it sends, so that its FIN is seen and the socket closes.
  socket.resume();
  socket.end(Replies.BUSY.bytes);
  const timer = setTimeout(() => socket.destroy(), REFUSED_LINGER_MS);
  socket.once('close', () => {
    clearTimeout(timer);
    onClosed?.();
  });
}
