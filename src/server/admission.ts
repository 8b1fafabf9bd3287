/**
 * Admission: whether a new connection may be served at all (docs/RELIABILITY.md
 * `--max-connections`, `--max-connections-per-ip`), decided before any other
 * work is done for it, and what a refused socket gets (`503 BUSY`).
 *
 * The event-loop, sequential and fork models count their connections in one
 * process, so `ConnectionLimits` decides at once. A cluster's workers each
 * see only their own connections, so they ask through `Admission` too, with
 * an answer that may arrive later (see cluster/connection-slots.ts).
 * With `--proxy-protocol` the decision comes in two halves
 * (docs/PROTOCOL.md §10): the connection limit at accept, the per-IP limit
 * once the PROXY header names the client (`combinedAdmission`).
 *
 * A connection's slot, once admitted, is held by exactly one owner: a
 * `HeldSlots` while the socket waits (a TLS handshake, an HTTP connection,
 * the sequential queue), then its `Connection` until it closes.
 */
import { isIPv4, isIPv6, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { Replies } from '../core/replies.js';
import { LiveList, type ListEntry } from './live-list.js';

/** `proxy`: a missing, malformed, late or untrusted PROXY header (docs/PROTOCOL.md §10). */
export type RejectReason = 'max-connections' | 'max-connections-per-ip' | 'shutdown' | 'proxy';

/** Where a server asks whether to serve a connection and reports when it ends. */
export interface Admission {
  /** null to serve the connection, otherwise why it is refused. */
  admit(ip: string): RejectReason | null | Promise<RejectReason | null>;
  /** An admitted connection has closed. */
  release(ip: string): void;
}

/**
 * What `--max-connections-per-ip` counts a client address as
 * (docs/SECURITY.md): an IPv4-mapped IPv6 address (`::ffff:127.0.0.1`, what
 * a dual-stack listener reports for an IPv4 client) as its IPv4 address, and
 * any other IPv6 address by its /64 prefix, since one host is usually handed
 * a whole /64 and can pick a new address in it for every connection. A zone
 * id (`fe80::1%eth0`) is ignored. IPv4 addresses, and anything that is not
 * an address at all, are their own key. Only the count uses this; logs and
 * records keep the address as the socket reported it.
 */
export function admissionKey(ip: string): string {
  // Every IPv6 address has a colon, no IPv4 address has one: the common case costs no parse.
  if (!ip.includes(':')) return ip;
  const zone = ip.indexOf('%');
  const address = zone === -1 ? ip : ip.slice(0, zone);
  if (!isIPv6(address)) return ip;
  const groups = ipv6Groups(address);
  if (groups.slice(0, 5).every((group) => group === 0) && groups[5] === 0xffff) {
    const [high = 0, low = 0] = groups.slice(6);
    return `${high >> 8}.${high & 0xff}.${low >> 8}.${low & 0xff}`;
  }
  return `${groups
    .slice(0, 4)
    .map((group) => group.toString(16))
    .join(':')}::/64`;
}

/** The eight 16-bit groups of an address that `isIPv6()` accepted. */
function ipv6Groups(address: string): number[] {
  const parse = (part: string): number[] =>
    part === ''
      ? []
      : part.split(':').flatMap((group) => {
          if (!isIPv4(group)) return [parseInt(group, 16)];
          const [a = 0, b = 0, c = 0, d = 0] = group.split('.').map(Number);
          return [(a << 8) | b, (c << 8) | d];
        });
  const gap = address.indexOf('::');
  if (gap === -1) return parse(address);
  const head = parse(address.slice(0, gap));
  const tail = parse(address.slice(gap + 2));
  return [...head, ...new Array<number>(8 - head.length - tail.length).fill(0), ...tail];
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
      const key = admissionKey(ip);
      const fromIp = this.#perIp.get(key) ?? 0;
      if (fromIp >= this.#maxPerIp) return 'max-connections-per-ip';
      this.#perIp.set(key, fromIp + 1);
    }
    this.#current++;
    return null;
  }

  release(ip: string): void {
    this.#current--;
    if (this.#maxPerIp > 0) {
      const key = admissionKey(ip);
      const left = (this.#perIp.get(key) ?? 1) - 1;
      if (left <= 0) this.#perIp.delete(key);
      else this.#perIp.set(key, left);
    }
  }
}

/**
 * One admission made of two (docs/PROTOCOL.md §10, `--proxy-protocol`): the
 * connection limit (`total`, taken at accept) and the per-IP limit
 * (`perIp`, asked once the PROXY header names the client). Asked at once,
 * as for the HTTP port, `total` comes first and is given back if `perIp`
 * refuses; `release()` gives back both.
 */
export function combinedAdmission(total: Admission, perIp: Admission): Admission {
  return {
    admit(ip) {
      const afterPerIp = (reason: RejectReason | null): RejectReason | null => {
        if (reason !== null) total.release(ip);
        return reason;
      };
      const afterTotal = (
        reason: RejectReason | null,
      ): RejectReason | null | Promise<RejectReason | null> => {
        if (reason !== null) return reason;
        const decision = perIp.admit(ip);
        return typeof decision === 'object' && decision !== null
          ? decision.then(afterPerIp)
          : afterPerIp(decision);
      };
      const decision = total.admit(ip);
      return typeof decision === 'object' && decision !== null
        ? decision.then(afterTotal)
        : afterTotal(decision);
    },
    release(ip) {
      perIp.release(ip);
      total.release(ip);
    },
  };
}

/** How long a refused connection may stay open to read its 503 BUSY. */
const REFUSED_LINGER_MS = 1_000;

function ignoreError(): void {}

/**
 * Answers `503 BUSY` and closes. The client gets a moment to read the reply,
 * however it behaves; then the socket goes, so refused sockets cannot pile up.
 * `onClosed` runs once the socket is gone.
 */
function refuseSocket(socket: Duplex, onClosed?: () => void): void {
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

/**
 * Decides, before any other work (no session, no parsing, no handshake),
 * whether a socket may be served: at once with `ConnectionLimits`, or once
 * a cluster's primary has answered.
 */
export class AdmissionGate {
  readonly #admission: Admission;
  readonly #isShuttingDown: () => boolean;

  constructor(admission: Admission, isShuttingDown: () => boolean) {
    this.#admission = admission;
    this.#isShuttingDown = isShuttingDown;
  }

  /**
   * Calls `admitted` (the socket now holds a slot for `ip`, the client's
   * address as admission counts it) or `refused`. `duringShutdown`: admit
   * even during a shutdown (the HTTP port, whose /readyz says 503 then).
   */
  decide(
    socket: Socket,
    ip: string,
    admitted: (ip: string) => void,
    refused: (reason: RejectReason) => void,
    { duringShutdown = false } = {},
  ): void {
    if (this.#isShuttingDown() && !duringShutdown) {
      refused('shutdown');
      return;
    }
    const decision = this.#admission.admit(ip);
    if (decision === null) {
      admitted(ip);
    } else if (typeof decision === 'string') {
      refused(decision);
    } else {
      // An answer from elsewhere (a cluster's primary): the socket holds its
      // bytes meanwhile, since nothing reads it yet.
      socket.on('error', ignoreError);
      decision.then(
        (reason) => {
          if (reason !== null) {
            refused(reason);
          } else if (socket.destroyed || (!duringShutdown && socket.readableEnded)) {
            // Gone while the answer travelled (a port probe, a health check).
            // Its EOF was read with no 'end' listener yet, and the listener
            // keeps half-open sockets, so no session would ever see it close.
            // (An HTTP socket is read by the HTTP parser, which sees its end.)
            this.#admission.release(ip);
            socket.destroy();
          } else if (this.#isShuttingDown() && !duringShutdown) {
            this.#admission.release(ip);
            refused('shutdown');
          } else {
            admitted(ip);
          }
        },
        () => refused('max-connections'),
      );
    }
  }
}

/**
 * Admitted sockets not served yet (a TLS handshake, an HTTP connection that
 * may become a WebSocket, a sequential client waiting for its turn), each
 * holding its place among the limits. A socket that closes first gives its
 * place back here, once; `take()` passes the place on to whatever serves the
 * socket, which gives it back when done. One class for every such wait, so
 * that no path can forget a slot.
 */
export class HeldSlots<T = null> {
  readonly #admission: Admission;
  /** Oldest first: the sequential queue relies on it. A list, not a Map keyed by socket: see live-list.ts. */
  readonly #held = new LiveList<HeldSlot<T>>();
  /** Where a held socket keeps its entry of `#held`, one key per HeldSlots (a socket may pass from one to another). */
  readonly #entryKey = Symbol('helo.heldSlot');

  constructor(admission: Admission) {
    this.#admission = admission;
  }

  get size(): number {
    return this.#held.size;
  }

  /** Holds `ip`'s place while `socket` waits; `onGone` runs after a close gave it back. */
  hold(socket: Duplex, ip: string, data: T, onGone?: () => void): void {
    const onClose = (): void => {
      if (this.take(socket) === undefined) return;
      this.#admission.release(ip);
      onGone?.();
    };
    socket.once('close', onClose);
    this.#keyed(socket)[this.#entryKey] = this.#held.add({ socket, ip, data, onClose });
  }

  /** Stops holding `socket`: its place is now the caller's to give back. */
  take(socket: Duplex): HeldSlot<T> | undefined {
    const keyed = this.#keyed(socket);
    const entry = keyed[this.#entryKey];
    if (entry === undefined || !this.#held.delete(entry)) return undefined;
    keyed[this.#entryKey] = undefined;
    socket.off('close', entry.item.onClose);
    return entry.item;
  }

  /** The socket held longest, or undefined. */
  oldest(): Duplex | undefined {
    return this.#held.oldest()?.socket;
  }

  /** Every socket held, oldest first (a copy: safe to `take()` while iterating). */
  sockets(): Duplex[] {
    return this.#held.items().map((slot) => slot.socket);
  }

  #keyed(socket: Duplex): Record<symbol, ListEntry<HeldSlot<T>> | undefined> {
    return socket as unknown as Record<symbol, ListEntry<HeldSlot<T>> | undefined>;
  }
}

interface HeldSlot<T> {
  readonly socket: Duplex;
  readonly ip: string;
  readonly data: T;
  readonly onClose: () => void;
}

/** Sockets answered `503 BUSY` (counted by reason), until they close; `destroyAll()` at the end of a shutdown. */
export class RefusedSockets {
  readonly #sockets = new LiveList<Duplex>();

  constructor(
    readonly counts: Record<RejectReason, number>,
    private readonly logger: { debug(details: object, message: string): void },
  ) {}

  /** `named`: the client a PROXY header named and the balancer (docs/PROTOCOL.md §10: logs show both). */
  refuse(
    socket: Duplex & { remoteAddress?: string | undefined },
    reason: RejectReason,
    named?: { readonly peer: string; readonly proxy: string },
  ): void {
    this.counts[reason]++;
    if (socket.destroyed) return;
    const who =
      named === undefined
        ? { peer: socket.remoteAddress }
        : { peer: named.peer, proxy: named.proxy };
    this.logger.debug({ ...who, reason }, 'connection refused: 503 BUSY');
    const refused = this.#sockets.add(socket);
    refuseSocket(socket, () => this.#sockets.delete(refused));
  }

  destroyAll(): void {
    for (const socket of this.#sockets.items()) socket.destroy();
  }
}
