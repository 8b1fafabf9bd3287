/**
 * The helo client over UDP (docs/PROTOCOL.md §6): one request per datagram, one
 * reply datagram, retries when the reply does not come.
 *
 * ```ts
 * const client = await connectUdp({ host: '127.0.0.1', port: 7779 });
 * await client.data('Hello world');         // 300 DRCV: stored
 * await client.close();
 * ```
 *
 * UDP may lose, duplicate or reorder datagrams, and a reply carries nothing
 * that says which request it answers. So:
 *
 * - **Every request gets its own socket** (its own source port), kept for
 *   its tries and closed when it settles. A late or duplicated reply to an
 *   earlier request reaches a closed port and is dropped by the kernel: it
 *   can never be taken for the reply to a later request (a stale
 *   `300 DRCV` must never acknowledge a payload that was lost).
 * - **Requests go one at a time**, in call order: a request is sent once
 *   the one before it has settled, so payloads are stored in call order.
 * - **Retries**: a try that gets no reply within its wait is sent again,
 *   the wait doubling each time, at most `retries` times, all of it within
 *   `timeoutMs`; then the request rejects with a `TimeoutError` that says
 *   how many tries over how long to which address (`retrySchedule()`).
 * - **At-least-once DATA**: when a `300 DRCV` is lost, the retry is a new
 *   datagram that the server stores again. A DATA that resolved is stored
 *   at least once; one that timed out may or may not have been stored.
 *   docs/UDP.md explains why the server does not deduplicate.
 *
 * The socket is connected to the server's address, so only datagrams from
 * it are read, and an ICMP "port unreachable" (nothing listening there)
 * fails the request at once with a `ConnectError`.
 */
import dgram, { type Socket, type SocketType } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import net from 'node:net';
import { Replies, type ReplyInfo } from '../core/replies.js';
import {
  AbortError,
  ClosedError,
  ConnectError,
  type HeloError,
  InvalidArgumentError,
  InvalidOptionError,
  ReplyError,
  TimeoutError,
} from '../errors.js';
import { MAX_REPLY_BYTES, parseReply, type Reply } from './reply.js';
import { DEFAULT_CLIENT_TIMEOUT_MS, DEFAULT_HOST, MAX_TIMER_MS } from '../defaults.js';
import { formatHostPort } from '../net/host-port.js';
import {
  checkDuration,
  checkPort,
  FIRST_RETRY_MS,
  formatDuration,
  keptTrying,
  MAX_RETRY_MS,
} from './shared.js';

export type { Reply } from './reply.js';

export const UDP_CLIENT_DEFAULTS = Object.freeze({
  host: DEFAULT_HOST,
  /** All tries of one request together (`--timeout`, 10 s, docs/UDP.md). */
  timeoutMs: DEFAULT_CLIENT_TIMEOUT_MS,
  /** Sends after the first: 5 tries in all. */
  retries: 4,
  /** The first try's wait for a reply; each next try waits twice as long. */
  firstTryMs: 250,
  waitMs: 0,
});

/** Options of `connectUdp()`. */
export interface UdpConnectOptions {
  /** Server host name or IP address. Default `127.0.0.1`. */
  host?: string;
  /** The server's UDP port (`helo server --udp-port N`), 1–65535. */
  port: number;
  /**
   * Longest time for one request, all its tries together, in ms. `0`: no
   * limit (the last try waits forever). Default `10000`.
   */
  timeoutMs?: number;
  /** How many times a request with no reply is sent again, 0–20. Default `4` (5 tries). */
  retries?: number;
  /**
   * How long the first try waits for its reply, in ms; each next try waits
   * twice as long, and the last one until `timeoutMs` is up. Scaled down
   * when the doubling tries would not fit in `timeoutMs`. Default `250`.
   */
  firstTryMs?: number;
  /**
   * While the server's port is unreachable (ICMP "port unreachable":
   * nothing listens there yet), keep trying for this long, in ms, with
   * backoff from 50 ms doubling to 1 s (`--wait`, README). Default `0`:
   * report it at once with a `ConnectError`.
   */
  waitMs?: number;
  /** Aborting it closes the client: the request in flight and those waiting reject with AbortError. */
  signal?: AbortSignal;
}

/** Options of one request. */
export interface UdpRequestOptions {
  /** Aborts this request (a DATA already sent may still be stored). */
  signal?: AbortSignal;
  /** This request's `timeoutMs` (all tries together; `0`: no limit). */
  timeoutMs?: number;
}

/** The longest UDP payload over IPv4 (65535 - 8 bytes UDP header - 20 bytes IP header). */
const MAX_DATAGRAM_BYTES = 65_507;

const CRLF = Buffer.from('\r\n');
const DATA_LF = Buffer.from('DATA\r\n');
const QUIT_LINE = Buffer.from('QUIT\r\n');
const LF = 0x0a;
const CR = 0x0d;
const MAX_RETRIES = 20;

/**
 * How long each try waits for its reply, in ms, for a request that may take
 * `timeoutMs` in all (0: no limit) with `retries` retries: `firstTryMs`
 * doubling, the last try taking what is left of `timeoutMs`. If the
 * doubling tries do not fit, the first wait shrinks until they do.
 *
 * `retrySchedule(10000, 4, 250)` is `[250, 500, 1000, 2000, 6250]`: sends at
 * 0, 0.25, 0.75, 1.75 and 3.75 s, failure at 10 s.
 */
export function retrySchedule(timeoutMs: number, retries: number, firstTryMs: number): number[] {
  const tries = retries + 1;
  let first = firstTryMs;
  if (timeoutMs > 0) first = Math.min(first, timeoutMs / (2 ** tries - 1));
  const waits: number[] = [];
  let used = 0;
  for (let i = 0; i < tries - 1; i++) {
    const wait = Math.max(1, Math.floor(first * 2 ** i));
    waits.push(wait);
    used += wait;
  }
  waits.push(timeoutMs > 0 ? Math.max(1, timeoutMs - used) : Number.POSITIVE_INFINITY);
  return waits;
}

/**
 * Checks the options and resolves the host name once (picking udp4 or
 * udp6). Nothing is sent: UDP has no connection, so whether a server
 * answers shows with the first request.
 */
export async function connectUdp(options: UdpConnectOptions): Promise<UdpClient> {
  const host = options.host ?? UDP_CLIENT_DEFAULTS.host;
  const { port } = options;
  const timeoutMs = options.timeoutMs ?? UDP_CLIENT_DEFAULTS.timeoutMs;
  const retries = options.retries ?? UDP_CLIENT_DEFAULTS.retries;
  const firstTryMs = options.firstTryMs ?? UDP_CLIENT_DEFAULTS.firstTryMs;
  const waitMs = options.waitMs ?? UDP_CLIENT_DEFAULTS.waitMs;
  if (typeof host !== 'string' || host === '') {
    throw new InvalidOptionError(`host must be a non-empty string, got ${String(host)}`);
  }
  checkPort(port);
  checkDuration('timeoutMs', timeoutMs);
  checkDuration('waitMs', waitMs);
  if (!Number.isInteger(retries) || retries < 0 || retries > MAX_RETRIES) {
    throw new InvalidOptionError(
      `retries must be a whole number from 0 to ${MAX_RETRIES}, got ${retries}`,
    );
  }
  if (!Number.isFinite(firstTryMs) || firstTryMs < 1 || firstTryMs > MAX_TIMER_MS) {
    throw new InvalidOptionError(
      `firstTryMs must be a number of ms from 1 to ${MAX_TIMER_MS}, got ${firstTryMs}`,
    );
  }
  if (options.signal?.aborted) {
    throw new AbortError('the connection attempt was aborted', { cause: options.signal.reason });
  }

  let ip = host;
  let family = net.isIP(host);
  if (family === 0) {
    try {
      ({ address: ip, family } = await lookup(host));
    } catch (error) {
      throw new ConnectError(`cannot resolve host '${host}'`, { cause: error });
    }
  }
  return new UdpClient({
    host,
    ip,
    type: family === 6 ? 'udp6' : 'udp4',
    port,
    timeoutMs,
    retries,
    firstTryMs,
    waitMs,
    signal: options.signal,
  });
}

export interface UdpClientConfig {
  readonly host: string;
  /** The resolved address that datagrams go to. */
  readonly ip: string;
  readonly type: SocketType;
  readonly port: number;
  readonly timeoutMs: number;
  readonly retries: number;
  readonly firstTryMs: number;
  readonly waitMs: number;
  readonly signal: AbortSignal | undefined;
}

export class UdpClient {
  /** `host:port` of the server (`[::1]:7779` for IPv6), as the TCP client's `address`. */
  readonly address: string;
  /** `udp://host:port`, for messages. */
  readonly url: string;
  readonly #config: UdpClientConfig;
  /** Settles when the last request queued has settled: requests go one at a time. */
  #tail: Promise<void> = Promise.resolve();
  /** Cancels the request in flight (close, abort). */
  #cancel: ((error: HeloError) => void) | null = null;
  #queued = 0;
  #failure: HeloError | null = null;

  /** Most callers want `connectUdp()`, which checks the options and resolves the host. */
  constructor(config: UdpClientConfig) {
    this.#config = config;
    this.address = formatHostPort(config.host, config.port);
    this.url = `udp://${this.address}`;
    const { signal } = config;
    if (signal?.aborted) this.#signalOnAbort();
    else signal?.addEventListener('abort', this.#signalOnAbort, { once: true });
  }

  /** True until `close()` (or the client's signal aborted). */
  get isOpen(): boolean {
    return this.#failure === null;
  }

  /** Requests not settled yet: the one in flight and those waiting their turn. */
  get pending(): number {
    return this.#queued;
  }

  /** `HELO` or `HELO <name>`; resolves with `100 OK`. Over UDP the name labels nothing (§6). */
  async helo(name?: string, options?: UdpRequestOptions): Promise<Reply> {
    if (name !== undefined && /[\r\n]/.test(name)) {
      throw new InvalidArgumentError('a HELO name cannot contain CR or LF');
    }
    const wire = Buffer.from(name ? `HELO ${name}\r\n` : 'HELO\r\n', 'utf8');
    return this.#request(wire, 'HELO', Replies.OK, options);
  }

  /**
   * `DATA`, LF, the payload, in one datagram; resolves with `300 DRCV`
   * (stored, at least once: see the top of this file), rejects with a
   * ReplyError on any other reply (`500 FAIL`, `401 LONG`, `503 BUSY`). The
   * payload is bytes (a string is sent as UTF-8) and may hold anything but LF.
   */
  async data(payload: string | Buffer, options?: UdpRequestOptions): Promise<Reply> {
    const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
    if (!Buffer.isBuffer(bytes)) {
      throw new InvalidArgumentError('a payload must be a string or a Buffer');
    }
    if (bytes.includes(LF)) {
      throw new InvalidArgumentError(
        'a payload cannot contain LF (it ends the line); send one DATA per line',
      );
    }
    // The bytes the TCP client writes: the payload on its own line takes any
    // payload (empty, all blanks) and the same line limit as on TCP; the
    // final CRLF keeps a payload's own final CR (the server removes one).
    const wire = Buffer.concat([DATA_LF, bytes, CRLF]);
    return this.#request(wire, 'DATA', Replies.DRCV, options);
  }

  /** `QUIT`; resolves with `200 BYE`. Over UDP it ends nothing: the client stays usable. */
  async quit(options?: UdpRequestOptions): Promise<Reply> {
    return this.#request(QUIT_LINE, 'QUIT', Replies.BYE, options);
  }

  /**
   * Sends one raw request (CRLF is appended) as one datagram and resolves
   * with whatever reply comes: `send('USER')` gets `400 BCMD`. The request
   * may hold one LF, for the `DATA` LF payload form (`send('DATA\nhello')`).
   * A request the server does not answer (an HTTP-looking line, §8) times out.
   */
  async send(request: string | Buffer, options?: UdpRequestOptions): Promise<Reply> {
    const bytes = typeof request === 'string' ? Buffer.from(request, 'utf8') : request;
    if (!Buffer.isBuffer(bytes)) {
      throw new InvalidArgumentError('a request must be a string or a Buffer');
    }
    return this.#request(Buffer.concat([bytes, CRLF]), labelOf(bytes), null, options);
  }

  /**
   * Closes the client: the request in flight and those waiting reject with
   * ClosedError (a DATA in flight may still be stored). Between requests
   * the client holds no socket, so this is quick.
   */
  async close(): Promise<void> {
    if (this.#failure === null) {
      this.#fail(new ClosedError('the client was closed by close() before the reply arrived'));
    }
    this.#config.signal?.removeEventListener('abort', this.#signalOnAbort);
    await this.#tail;
  }

  readonly #signalOnAbort = (): void => {
    this.#fail(new AbortError('the client was aborted', { cause: this.#config.signal?.reason }));
  };

  #fail(error: HeloError): void {
    this.#failure ??= error;
    this.#cancel?.(error);
  }

  #request(
    wire: Buffer,
    label: string,
    expected: ReplyInfo | null,
    options: UdpRequestOptions | undefined,
  ): Promise<Reply> {
    const timeoutMs = options?.timeoutMs ?? this.#config.timeoutMs;
    checkDuration('timeoutMs', timeoutMs);
    if (wire.length > MAX_DATAGRAM_BYTES) {
      return Promise.reject(
        new InvalidArgumentError(
          `${label} of ${wire.length} bytes does not fit in one UDP datagram (at most ${MAX_DATAGRAM_BYTES})`,
        ),
      );
    }
    if (this.#failure !== null) return Promise.reject(this.#closedError());
    const signal = options?.signal;
    return new Promise<Reply>((resolve, reject) => {
      // Aborted while it waits its turn: rejected at once, and never sent.
      let isAborted = false;
      const signalOnAbort = (): void => {
        isAborted = true;
        reject(
          new AbortError(`${label} was aborted before it was sent`, { cause: signal?.reason }),
        );
      };
      if (signal?.aborted) {
        signalOnAbort();
        return;
      }
      signal?.addEventListener('abort', signalOnAbort, { once: true });
      this.#queued++;
      const run = async (): Promise<void> => {
        signal?.removeEventListener('abort', signalOnAbort);
        try {
          if (isAborted) return;
          if (this.#failure !== null) throw this.#closedError();
          const reply = await this.#exchange(wire, label, timeoutMs, signal);
          if (
            expected !== null &&
            (reply.code !== expected.code || reply.token !== expected.token)
          ) {
            throw new ReplyError(reply, `${expected.code} ${expected.token}`);
          }
          resolve(reply);
        } catch (error) {
          reject(error as Error);
        } finally {
          this.#queued--;
        }
      };
      this.#tail = this.#tail.then(run);
    });
  }

  /** The error for a request made (or reached) after the client closed. */
  #closedError(): HeloError {
    const failure = this.#failure;
    if (failure instanceof AbortError) return failure;
    return new ClosedError('the client is closed');
  }

  /** One request, over its own socket: send, wait, resend... until a reply, the limit or a failure. */
  #exchange(
    wire: Buffer,
    label: string,
    timeoutMs: number,
    signal: AbortSignal | undefined,
  ): Promise<Reply> {
    const { ip, port, type, retries, firstTryMs, waitMs } = this.#config;
    const waits = retrySchedule(timeoutMs, retries, firstTryMs);
    const url = this.url;

    return new Promise<Reply>((resolve, reject) => {
      if (signal?.aborted) {
        reject(new AbortError(`${label} was aborted before it was sent`, { cause: signal.reason }));
        return;
      }
      const socket: Socket = dgram.createSocket({ type });
      const startedAt = performance.now();
      let tries = 0;
      let refusedDelayMs = FIRST_RETRY_MS;
      let timer: NodeJS.Timeout | undefined;
      let isDone = false;

      const finish = (error: Error | null, reply?: Reply): void => {
        if (isDone) return;
        isDone = true;
        if (timer !== undefined) clearTimeout(timer);
        signal?.removeEventListener('abort', signalOnAbort);
        this.#cancel = null;
        try {
          socket.close();
        } catch {
          // Already closed.
        }
        if (error === null) resolve(reply!);
        else reject(error);
      };

      const sendTry = (): void => {
        if (isDone) return;
        tries++;
        socket.send(wire, (error) => {
          if (error) finish(sendError(error, url, label));
        });
        const wait = waits[tries - 1]!;
        // An infinite wait (timeoutMs 0): no timer, the reply or an abort ends it.
        timer = Number.isFinite(wait) ? setTimeout(tryOnTimeout, wait) : undefined;
      };

      const tryOnTimeout = (): void => {
        if (tries < waits.length) {
          sendTry();
          return;
        }
        const elapsed = formatDuration(performance.now() - startedAt);
        const triesText = tries === 1 ? '1 try' : `${tries} tries`;
        const stored = label === 'DATA' ? '; the payload may or may not have been stored' : '';
        finish(
          new TimeoutError(
            `no reply from ${url} to ${label} after ${triesText} over ${elapsed}${stored}`,
          ),
        );
      };

      const socketOnMessage = (datagram: Buffer): void => {
        const reply = parseDatagramReply(datagram);
        if (reply === null) {
          const shown = JSON.stringify(datagram.toString('latin1', 0, MAX_REPLY_BYTES + 2));
          finish(
            new ClosedError(
              `${url} answered with something that is not a helo reply: ${shown} — is it a helo server?`,
            ),
          );
          return;
        }
        finish(null, reply);
      };

      const socketOnError = (error: NodeJS.ErrnoException): void => {
        if (error.code !== 'ECONNREFUSED') {
          finish(sendError(error, url, label));
          return;
        }
        // ICMP port unreachable: nothing listens there (yet).
        const waitedMs = performance.now() - startedAt;
        if (waitedMs >= waitMs) {
          finish(
            new ConnectError(
              `nothing is listening at ${url} (port unreachable) — is the server running with --udp-port?${keptTrying(waitMs)}`,
              { cause: error },
            ),
          );
          return;
        }
        // --wait: not a lost try; send it again once the server may be up.
        if (timer !== undefined) clearTimeout(timer);
        tries--;
        const delay = Math.min(refusedDelayMs, waitMs - waitedMs);
        refusedDelayMs = Math.min(refusedDelayMs * 2, MAX_RETRY_MS);
        timer = setTimeout(sendTry, delay);
      };

      const signalOnAbort = (): void => {
        finish(new AbortError(`${label} was aborted`, { cause: signal?.reason }));
      };

      this.#cancel = (error) => finish(error);
      signal?.addEventListener('abort', signalOnAbort, { once: true });
      socket.on('message', socketOnMessage);
      socket.on('error', socketOnError);
      socket.connect(port, ip, () => sendTry());
    });
  }
}

/** A reply datagram: one reply line, CRLF (or LF) at its end; null if it is not one. */
function parseDatagramReply(datagram: Buffer): Reply | null {
  if (datagram.length > MAX_REPLY_BYTES + 2) return null;
  let end = datagram.length;
  if (end > 0 && datagram[end - 1] === LF) {
    end--;
    if (end > 0 && datagram[end - 1] === CR) end--;
  }
  return parseReply(datagram.toString('latin1', 0, end));
}

function sendError(error: NodeJS.ErrnoException, url: string, label: string): HeloError {
  switch (error.code) {
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      return new ConnectError(`${url} is unreachable (${error.code})`, { cause: error });
    case 'EMSGSIZE':
      return new ConnectError(`${label} is too large for one datagram on the way to ${url}`, {
        cause: error,
      });
    default:
      return new ConnectError(`cannot send ${label} to ${url}: ${error.message}`, {
        cause: error,
      });
  }
}

/** The first word of a raw request, for messages (`USER`, `HELO`...). */
function labelOf(request: Buffer): string {
  const text = request.toString('latin1', 0, Math.min(request.length, 32));
  const word = text.trimStart().split(/[ \t\r\n]/, 1)[0] ?? '';
  return word === '' ? 'an empty request' : JSON.stringify(word).slice(1, -1);
}
