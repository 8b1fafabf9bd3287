/**
 * The UDP transport (docs/PROTOCOL.md §6): one request per datagram, one reply
 * datagram, no state across datagrams.
 *
 *   datagram -> interpretDatagram() (src/core/datagram.ts, pure: how a
 *               datagram is read, framer + a fresh Session)
 *     reply  -> one reply datagram to the sender, at once
 *     store  -> appendForReply() (store-reply.ts) with a fresh session id,
 *               no HELO name; 300 DRCV once committed, 500 FAIL if not
 *     reject -> §8: no reply (logged as a warning, rate-limited)
 *
 * It counts in the server's ServerCounters, the same fields the stream
 * transports count in (a datagram is a `udp` connection, an append in
 * flight a current one), so `/metrics` needs nothing UDP-specific.
 *
 * UDP has no acknowledgement of its own, so DATA is at-least-once: if the
 * `300 DRCV` datagram is lost, the client's retry is a new datagram and is
 * stored again (docs/UDP.md says why helo does not guess duplicates from
 * their bytes).
 */
import dgram, { type RemoteInfo, type Socket, type SocketType } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import type { Logger } from 'pino';
import { interpretDatagram } from '../../core/datagram.js';
import { ALL_REPLIES, Replies, type ReplyInfo } from '../../core/replies.js';
import { ListenError } from '../../errors.js';
import type { Store } from '../../store/store.js';
import { describeListenError } from './tcp.js';
import { formatHostPort } from '../../net/host-port.js';
import { ServerCounters } from '../observe/server-counters.js';
import { appendForReply } from '../store-reply.js';

export interface UdpEndpointOptions {
  /** Address to bind (`--host`): an IP address or a host name. */
  readonly host: string;
  /** `--udp-port`; 0 picks a free port. */
  readonly port: number;
  /** A bound socket passed by socket activation (activation.ts): used instead of binding. */
  readonly fd?: number | undefined;
  /** Longest line without its terminator (`--max-line`), as on TCP. */
  readonly maxLineBytes: number;
  /**
   * Appends waiting for their commit beyond which new DATA datagrams are
   * dropped without a reply (the client retries later). UDP has no
   * backpressure, so this bounds the memory a flood can take. Default 1024.
   */
  readonly maxPendingAppends?: number;
  /** How long `close()` waits for appends in flight before it closes anyway. Default 8000 ms. */
  readonly shutdownGraceMs?: number;
}

export interface UdpEndpointContext {
  /** Where payloads go. The caller owns it: the endpoint never closes it. */
  readonly store: Store;
  readonly logger: Logger;
  /** A new session id; called once per stored payload (§6: one per datagram). */
  readonly newSessionId: () => string;
  /** True once the server is shutting down: every request is answered `503 BUSY`. */
  readonly isShuttingDown: () => boolean;
  /**
   * Where it counts: the server's counters, shared with the stream
   * transports. Without them (an endpoint on its own) it counts in its own.
   */
  readonly counters?: ServerCounters;
}

/**
 * Read from the counters the endpoint counts in: when those are the
 * server's, shared with the stream transports, the byte, reply, payload and
 * `rejected` figures include those transports' too.
 */
export interface UdpEndpointStats {
  /** Datagrams received, whatever they held. */
  readonly datagramsIn: number;
  readonly bytesIn: number;
  /** Reply datagrams sent, by reply code (`{ 100: 3, 300: 7, ... }`); every code of `ALL_REPLIES` is present. */
  readonly repliesByCode: Readonly<Record<number, number>>;
  readonly bytesOut: number;
  /** Datagrams left unanswered because they looked like HTTP (§8). */
  readonly rejected: number;
  /** DATA datagrams dropped unanswered because `maxPendingAppends` appends were waiting. */
  readonly dropped: number;
  /** Payloads stored and answered `300 DRCV`. */
  readonly payloadsStored: number;
  /** Payloads the store refused, answered `500 FAIL`. */
  readonly payloadsFailed: number;
  /** Appends waiting for their commit now. */
  readonly pendingAppends: number;
  /** Replies the kernel would not send (the client then retries). */
  readonly sendErrors: number;
}

const DEFAULT_MAX_PENDING_APPENDS = 1024;
const DEFAULT_SHUTDOWN_GRACE_MS = 8_000;

export class UdpEndpoint {
  readonly #socket: Socket;
  readonly #host: string;
  readonly #port: number;
  readonly #maxLineBytes: number;
  readonly #maxPendingAppends: number;
  readonly #shutdownGraceMs: number;
  readonly #context: UdpEndpointContext;
  readonly #pending = new Set<Promise<void>>();
  readonly #warnings: WarningLimiter;
  #closed: Promise<void> | null = null;
  #isClosing = false;
  #isSocketClosed = false;
  /** Replies handed to `send()` whose callback has not run yet. */
  #unsent = 0;
  #onAllSent: (() => void) | null = null;

  readonly #counters: ServerCounters;
  /** Not in the server's counters: it has no field for this. */
  #sendErrors = 0;

  private constructor(
    socket: Socket,
    options: UdpEndpointOptions,
    context: UdpEndpointContext,
    port: number,
  ) {
    this.#socket = socket;
    this.#host = options.host;
    this.#port = port;
    this.#maxLineBytes = options.maxLineBytes;
    this.#maxPendingAppends = options.maxPendingAppends ?? DEFAULT_MAX_PENDING_APPENDS;
    this.#shutdownGraceMs = options.shutdownGraceMs ?? DEFAULT_SHUTDOWN_GRACE_MS;
    this.#context = context;
    this.#counters = context.counters ?? new ServerCounters();
    this.#warnings = new WarningLimiter(context.logger);
    socket.on('message', this.#socketOnMessage);
    socket.on('error', this.#socketOnError);
  }

  /**
   * Binds a UDP socket on `host:port` (udp6 for an IPv6 host, udp4
   * otherwise) and starts answering.
   *
   * @throws {ListenError} naming the address and the problem (port in use...)
   */
  static async bind(
    options: UdpEndpointOptions,
    context: UdpEndpointContext,
  ): Promise<UdpEndpoint> {
    const { host, port } = options;
    const type = await socketTypeFor(host, port);
    const socket = dgram.createSocket({ type });
    await new Promise<void>((resolve, reject) => {
      const socketOnError = (error: NodeJS.ErrnoException): void => {
        socket.close();
        reject(new ListenError(describeUdpListenError(error, host, port), { cause: error }));
      };
      socket.once('error', socketOnError);
      // Not exclusive: cluster workers then share one socket, as they share the TCP listener.
      // A socket passed by socket activation (activation.ts) is already bound.
      const where = options.fd === undefined ? { address: host, port } : { fd: options.fd };
      socket.bind(where, () => {
        socket.off('error', socketOnError);
        resolve();
      });
    });
    return new UdpEndpoint(socket, options, context, socket.address().port);
  }

  /** The port bound (differs from the one asked when that was 0). */
  get port(): number {
    return this.#port;
  }

  get host(): string {
    return this.#host;
  }

  /** `udp://127.0.0.1:7779`, with brackets around an IPv6 host. */
  get url(): string {
    return `udp://${formatHostPort(this.#host, this.#port)}`;
  }

  get stats(): UdpEndpointStats {
    const counters = this.#counters;
    return {
      datagramsIn: counters.connectionsTotal.udp,
      bytesIn: counters.bytesReceived,
      repliesByCode: Object.fromEntries(
        ALL_REPLIES.map((reply) => [reply.code, counters.repliesByCode[reply.code]!]),
      ),
      bytesOut: counters.bytesSent,
      rejected: counters.crossProtocolRejects,
      dropped: counters.datagramsDropped,
      payloadsStored: counters.payloadsStored,
      payloadsFailed: counters.payloadsFailed,
      pendingAppends: this.#pending.size,
      sendErrors: this.#sendErrors,
    };
  }

  /**
   * Stops serving: requests that arrive from now on are answered
   * `503 BUSY`; appends in flight are waited for (at most
   * `shutdownGraceMs`) and answered; then the socket closes. Safe to call
   * twice. The store stays open: close it after this resolves.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#isClosing = true;
    if (this.#pending.size > 0 || this.#unsent > 0) {
      let grace: NodeJS.Timeout | undefined;
      const graceOver = new Promise<void>((resolve) => {
        grace = setTimeout(resolve, this.#shutdownGraceMs);
      });
      const drained = (async () => {
        while (this.#pending.size > 0) await Promise.all(this.#pending);
        // A reply handed to send() goes out only once its callback runs:
        // closing the socket before that would drop it.
        if (this.#unsent > 0) await new Promise<void>((resolve) => (this.#onAllSent = resolve));
      })();
      await Promise.race([drained, graceOver]);
      clearTimeout(grace);
      if (this.#pending.size > 0) {
        this.#context.logger.warn(
          { url: this.url, pendingAppends: this.#pending.size },
          'UDP endpoint closing with appends still in flight; their replies are not sent',
        );
      }
    }
    this.#isSocketClosed = true;
    await new Promise<void>((resolve) => this.#socket.close(() => resolve()));
  }

  readonly #socketOnMessage = (datagram: Buffer, peer: RemoteInfo): void => {
    this.#counters.datagramReceived(datagram.length);
    const request = interpretDatagram(datagram, this.#maxLineBytes);
    if (request.type === 'reject') {
      // docs/PROTOCOL.md §8: an HTTP-looking command line gets no reply.
      this.#counters.crossProtocolRejected();
      this.#warnings.warn(
        { peer: formatPeer(peer), transport: 'udp' },
        'HTTP-like line in a UDP datagram; no reply',
      );
      return;
    }
    if (this.#isClosing || this.#context.isShuttingDown()) {
      this.#send(Replies.BUSY, peer);
      return;
    }
    if (request.type === 'reply') {
      this.#send(request.reply, peer);
      return;
    }
    if (this.#pending.size >= this.#maxPendingAppends) {
      // No reply: the client's retry comes back when the store has caught up.
      this.#counters.datagramDropped();
      this.#warnings.warn(
        { transport: 'udp', pendingAppends: this.#pending.size },
        'store behind; UDP DATA datagram dropped',
      );
      return;
    }
    this.#store(request.payload, peer);
  };

  readonly #socketOnError = (error: NodeJS.ErrnoException): void => {
    // A bound UDP socket's errors concern one datagram, never the endpoint.
    this.#context.logger.warn({ url: this.url, code: error.code }, 'UDP socket error');
  };

  #store(payload: Buffer, peer: RemoteInfo): void {
    // docs/PROTOCOL.md §6: a fresh session id per datagram, no HELO name.
    const record = {
      receivedAt: Date.now(),
      session: this.#context.newSessionId(),
      peer: formatPeer(peer),
      name: null,
      payload,
    };
    const { store, logger } = this.#context;
    const counters = this.#counters;
    const settled = appendForReply(store, record, counters, logger, {
      session: record.session,
      peer: record.peer,
      transport: 'udp',
    }).then((reply) => this.#send(reply, peer));
    // An append in flight is a UDP "connection" open now (`connectionsCurrent`).
    counters.datagramAppendPending(1);
    this.#pending.add(settled);
    void settled.finally(() => {
      this.#pending.delete(settled);
      counters.datagramAppendPending(-1);
    });
  }

  #send(reply: ReplyInfo, peer: RemoteInfo): void {
    if (this.#isSocketClosed) return;
    this.#counters.replied(reply.code);
    this.#counters.sent(reply.bytes.length);
    this.#unsent++;
    try {
      this.#socket.send(reply.bytes, peer.port, peer.address, (error) => {
        this.#sendDone();
        if (error) this.#sendFailed(error, peer);
      });
    } catch (error) {
      this.#sendDone();
      this.#sendFailed(error as Error, peer);
    }
  }

  #sendDone(): void {
    this.#unsent--;
    if (this.#unsent === 0) this.#onAllSent?.();
  }

  #sendFailed(error: Error, peer: RemoteInfo): void {
    this.#sendErrors++;
    this.#context.logger.debug(
      { peer: formatPeer(peer), code: (error as NodeJS.ErrnoException).code },
      'UDP reply not sent',
    );
  }
}

/** Logs at most `perSecond` warnings a second, then one line saying how many were left out. */
class WarningLimiter {
  readonly #logger: Logger;
  readonly #perSecond: number;
  #windowStart = 0;
  #inWindow = 0;
  #suppressed = 0;

  constructor(logger: Logger, perSecond = 10) {
    this.#logger = logger;
    this.#perSecond = perSecond;
  }

  /** A datagram's source address can be forged: a flood must not become a flood of logs. */
  warn(fields: Record<string, unknown>, message: string): void {
    const now = Date.now();
    if (now - this.#windowStart >= 1000) {
      if (this.#suppressed > 0) {
        this.#logger.warn({ suppressed: this.#suppressed }, 'similar UDP warnings left out');
      }
      this.#windowStart = now;
      this.#inWindow = 0;
      this.#suppressed = 0;
    }
    if (this.#inWindow < this.#perSecond) {
      this.#inWindow++;
      this.#logger.warn(fields, message);
    } else {
      this.#suppressed++;
    }
  }
}

/** `ip:port`, `[ip6]:port`: the same form as a TCP peer. */
function formatPeer(peer: RemoteInfo): string {
  return formatHostPort(peer.address, peer.port);
}

/** udp6 for an IPv6 host (or a name that resolves to one), udp4 otherwise. */
async function socketTypeFor(host: string, port: number): Promise<SocketType> {
  if (net.isIPv6(host)) return 'udp6';
  if (net.isIPv4(host)) return 'udp4';
  try {
    const { family } = await lookup(host);
    return family === 6 ? 'udp6' : 'udp4';
  } catch (error) {
    const cause = error as NodeJS.ErrnoException;
    throw new ListenError(describeUdpListenError(cause, host, port), { cause });
  }
}

/** `cannot listen on udp://127.0.0.1:7779: the port is already in use`, and the like. */
function describeUdpListenError(error: NodeJS.ErrnoException, host: string, port: number): string {
  const prefix = `cannot listen on ${formatHostPort(host, port)}`;
  const message = describeListenError(error, host, port);
  const reason = message.startsWith(prefix) ? message.slice(prefix.length) : `: ${message}`;
  return `cannot listen on udp://${formatHostPort(host, port)}${reason}`;
}
