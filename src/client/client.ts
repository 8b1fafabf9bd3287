/**
 * The helo client library: one TCP connection, typed and pipelined.
 *
 * ```ts
 * const client = await connect({ port: 7777 });
 * await client.helo('lab');                 // 100 OK
 * await client.data('Hello world');         // 300 DRCV
 * await client.quit();                      // 200 BYE, then closed
 * ```
 *
 * Requests are written at once and wait in a FIFO; the server answers
 * strictly in request order (docs/PROTOCOL.md §2), so each reply settles the
 * oldest waiting request (node-redis `commands-queue.ts` does the same).
 * Replies are matched by position only, so anything that could shift the
 * positions — a reply timeout, an abort, a malformed reply — ends the
 * connection rather than risk handing a late reply to the wrong request.
 *
 * The client runs its own copy of the protocol's `Session` over the lines it
 * sends. That is how it knows that a bare `DATA` gets no reply of its own
 * (the next line is its payload, whatever it says), and that after `QUIT`
 * the server is closing.
 */
import { EventEmitter } from 'node:events';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import { setTimeout as sleep } from 'node:timers/promises';
import { Replies, type ReplyInfo } from '../core/replies.js';
import { Session } from '../core/session.js';
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
import { WebSocket } from 'ws';
import { WebSocketLineStream } from '../net/websocket-line-stream.js';
import { parseAddress } from './address.js';
import { DEFAULT_CLIENT_TIMEOUT_MS, DEFAULT_HOST, DEFAULT_PORT } from '../defaults.js';
import { formatHostPort } from '../net/host-port.js';
import {
  checkDuration,
  checkPort,
  FIRST_RETRY_MS,
  formatDuration,
  keptTrying,
  MAX_RETRY_MS,
} from './shared.js';
import { ReplyParser, type Reply, type ReplySink } from './reply.js';

export type { Reply } from './reply.js';

/** The documented defaults (docs/PROTOCOL.md §1, README `helo client`). */
export const CLIENT_DEFAULTS = Object.freeze({
  host: DEFAULT_HOST,
  port: DEFAULT_PORT,
  timeoutMs: DEFAULT_CLIENT_TIMEOUT_MS,
  waitMs: 0,
});

/** TLS settings of a `tls://` connection. */
export interface ClientTlsOptions {
  /** CA certificate(s), PEM, that sign the server's certificate (default: the system's). */
  ca?: string | Buffer;
  /** Client certificate and key, PEM, for servers that require one (mutual TLS). */
  cert?: string | Buffer;
  key?: string | Buffer;
  /** Name checked against the server certificate. Default: `host` (not sent for an IP). */
  servername?: string;
}

/** Options of `connect()`. */
export interface ConnectOptions {
  /**
   * Where the server is, as one string: `tcp://host:port`, `tls://host:port`,
   * `unix:/path` or `host:port`. Wins over `host`/`port`/`path`.
   */
  address?: string;
  /** Server host name or IP address. Default `127.0.0.1`. */
  host?: string;
  /** Server TCP port, 1–65535. Default `7777`. */
  port?: number;
  /** A Unix domain socket to connect to instead of a TCP port. */
  path?: string;
  /** Connect with TLS (`tls://` addresses imply it). */
  tls?: ClientTlsOptions | boolean;
  /**
   * Longest wait for each reply, in ms, counted from when its request is
   * written; `0` waits forever. A request can override it. Default `10000`.
   */
  timeoutMs?: number;
  /**
   * Longest wait for one connection attempt, in ms; `0` leaves it to the
   * operating system. Default: `timeoutMs`.
   */
  connectTimeoutMs?: number;
  /**
   * Keep retrying a refused (or reset, or missing-socket) connection for
   * this long, in ms, with backoff from 50 ms doubling to 1 s: the server
   * may start after the client. Default `0`: report the first failure.
   */
  waitMs?: number;
  /**
   * Aborts the connection attempt (`connect()` rejects with AbortError).
   * Once connected, aborting it closes the connection and every waiting
   * request rejects with AbortError.
   */
  signal?: AbortSignal;
  /**
   * The line terminator sent: `crlf` (default), `lf`, or `none` for
   * classroom servers that take each `recv()` as one command (send one
   * request at a time, waiting for its reply, docs/PROTOCOL.md §9).
   */
  lineEnding?: LineEnding;
  /**
   * Classroom servers send lines that are not replies (a description after
   * `400 BCMD`). `false` (default): such a line ends the connection, as
   * nothing after it can be trusted. `true`: it is emitted as `unexpected`
   * and the session goes on (replies are matched by position, and a line
   * that is not a reply takes no position).
   */
  tolerateStrayLines?: boolean;
}

export type LineEnding = 'crlf' | 'lf' | 'none';

/** Options of one request. */
export interface RequestOptions {
  /** Aborts the request; as a reply can no longer be matched, this closes the connection. */
  signal?: AbortSignal;
  /** Longest wait for this reply, in ms; `0` waits forever. Default: the client's `timeoutMs`. */
  timeoutMs?: number;
}

/**
 * - `command`: ready for a request;
 * - `payload`: a bare `DATA` went out through `send()`; the next line sent is its payload;
 * - `quitting`: `QUIT` was sent (or a line the server refuses to process,
 *   docs/PROTOCOL.md §8): the server is closing, new requests are refused;
 * - `closed`: the connection is gone.
 */
export type ClientState = 'command' | 'payload' | 'quitting' | 'closed';

export interface HeloClientEvents {
  /** Every reply, in the order it arrived, before it settles its request. */
  reply: [reply: Reply];
  /**
   * A reply that arrived while no request was waiting: the server speaks
   * first only to end the session (`503 BUSY` when full or shutting down,
   * `408 TOUT` after the idle timeout), and closes right after.
   */
  unsolicited: [reply: Reply];
  /**
   * With `tolerateStrayLines`: a server line that is not a reply (as a JSON
   * string, so that control bytes stay visible), or a reply that came
   * before a bare DATA's payload line was sent (nothing may come in between,
   * docs/PROTOCOL.md §3). Neither settles a request.
   */
  unexpected: [what: string];
  /**
   * The connection closed. `reason` is null when it ended as asked (after
   * `200 BYE` or `close()`), otherwise the error that explains it.
   */
  close: [reason: HeloError | null];
}

/** A request waiting for its reply. */
interface Pending {
  /** The command word, for messages (`HELO`, `DATA`, a raw line's start). */
  readonly label: string;
  /** The reply that resolves it; null for `send()`, which takes any reply. */
  readonly expected: ReplyInfo | null;
  /** A bare DATA from `send()`: it shares the reply of the line after it. */
  readonly sharesNextReply: boolean;
  readonly resolve: (reply: Reply) => void;
  readonly reject: (error: Error) => void;
  timer: NodeJS.Timeout | undefined;
  signal: AbortSignal | undefined;
  onAbort: (() => void) | undefined;
}

const CRLF = Buffer.from('\r\n');
const LINE_ENDINGS: Record<LineEnding, Buffer> = {
  crlf: CRLF,
  lf: Buffer.from('\n'),
  none: Buffer.alloc(0),
};
const LF = 0x0a;
const DATA_LINE = Buffer.from('DATA\r\n');
const QUIT_LINE = Buffer.from('QUIT\r\n');
const EMPTY = Buffer.alloc(0);
const SPACE = Buffer.from(' ');
// Errors after which the server may simply not be up yet (`--wait`).
const RETRYABLE = new Set(['ECONNREFUSED', 'ENOENT', 'ECONNRESET']);

/** Connects to a helo server; resolves once the connection (and TLS handshake) is up. */
export async function connect(options: ConnectOptions = {}): Promise<HeloClient> {
  const target = resolveTarget(options);
  const timeoutMs = options.timeoutMs ?? CLIENT_DEFAULTS.timeoutMs;
  const connectTimeoutMs = options.connectTimeoutMs ?? timeoutMs;
  const waitMs = options.waitMs ?? CLIENT_DEFAULTS.waitMs;
  checkDuration('timeoutMs', timeoutMs);
  checkDuration('connectTimeoutMs', connectTimeoutMs);
  checkDuration('waitMs', waitMs);

  const lineEnding = options.lineEnding ?? 'crlf';
  if (!Object.hasOwn(LINE_ENDINGS, lineEnding)) {
    throw new InvalidOptionError(
      `lineEnding must be crlf, lf or none, got ${JSON.stringify(lineEnding)}`,
    );
  }

  const socket = await openSocket(target, connectTimeoutMs, waitMs, options.signal);
  return new HeloClient(socket, {
    address: target.address,
    timeoutMs,
    signal: options.signal,
    lineEnding,
    tolerateStrayLines: options.tolerateStrayLines === true,
  });
}

/** Where and how to connect, checked. */
function resolveTarget(options: ConnectOptions): StreamTarget {
  const parsed =
    options.address === undefined
      ? null
      : parseAddress(options.address, options.port ?? CLIENT_DEFAULTS.port);
  if (parsed?.transport === 'ws') return { kind: 'ws', url: parsed.url, address: parsed.url };
  if (parsed?.transport === 'udp') {
    throw new InvalidOptionError(
      'connect() speaks tcp://, tls://, unix: and ws:// addresses; for udp:// use connectUdp()',
    );
  }
  const path =
    parsed?.transport === 'unix' ? parsed.path : parsed === null ? options.path : undefined;
  if (path !== undefined) {
    if (typeof path !== 'string' || path === '') {
      throw new InvalidOptionError(`path must be a non-empty string, got ${String(path)}`);
    }
    return { kind: 'unix', path, address: `unix:${path}` };
  }
  const hostPort = parsed !== null && 'host' in parsed ? parsed : null;
  const host = hostPort?.host ?? options.host ?? CLIENT_DEFAULTS.host;
  const port = hostPort?.port ?? options.port ?? CLIENT_DEFAULTS.port;
  if (typeof host !== 'string' || host === '') {
    throw new InvalidOptionError(`host must be a non-empty string, got ${String(host)}`);
  }
  checkPort(port);
  const wantsTls =
    parsed?.transport === 'tls' || (options.tls !== undefined && options.tls !== false);
  if (!wantsTls) return { kind: 'tcp', host, port, address: formatHostPort(host, port) };
  const tlsOptions = typeof options.tls === 'object' ? options.tls : {};
  return {
    kind: 'tls',
    host,
    port,
    tls: tlsOptions,
    address: `tls://${formatHostPort(host, port)}`,
  };
}

export class HeloClient extends EventEmitter<HeloClientEvents> {
  /** `host:port` of the server, for messages (`[::1]:7777` for IPv6). */
  readonly address: string;
  readonly #socket: ClientSocket;
  readonly #timeoutMs: number;
  readonly #parser: ReplyParser;
  readonly #eol: Buffer;
  readonly #isTolerant: boolean;
  /** The server's session, replayed from what this client sends. */
  readonly #session = new Session();
  readonly #queue = new Fifo<Pending>();
  readonly #closed: Promise<void>;
  readonly #signal: AbortSignal | undefined;
  #isEnding = false;
  #isClosed = false;
  #isCorked = false;
  /** Why the connection ended early; the first cause wins. */
  #failure: HeloError | null = null;
  /** The last reply after which the server closes (200 BYE, 408 TOUT, 503 BUSY). */
  #closingReply: Reply | null = null;
  #isClosedByUs = false;
  /** A line that looks like HTTP went out: the server closes without a reply (§8). */
  #isRejected = false;

  /**
   * Wraps a connected socket. Most callers want `connect()`, which also
   * validates the options and retries while the server is starting.
   */
  constructor(
    socket: ClientSocket,
    options: {
      address: string;
      timeoutMs?: number;
      signal?: AbortSignal | undefined;
      lineEnding?: LineEnding;
      tolerateStrayLines?: boolean;
    },
  ) {
    super();
    this.#eol = LINE_ENDINGS[options.lineEnding ?? 'crlf'];
    this.#isTolerant = options.tolerateStrayLines === true;
    this.#parser = new ReplyParser({ tolerant: this.#isTolerant });
    this.address = options.address;
    this.#socket = socket;
    this.#timeoutMs = options.timeoutMs ?? CLIENT_DEFAULTS.timeoutMs;
    this.#signal = options.signal;
    // Requests are small and pipelined: Nagle would hold each back an RTT.
    socket.setNoDelay(true);
    socket.on('data', this.#socketOnData);
    socket.on('end', this.#socketOnEnd);
    socket.on('error', this.#socketOnError);
    this.#closed = new Promise((resolve) => {
      socket.once('close', () => {
        this.#socketOnClose();
        resolve();
      });
    });
    if (this.#signal?.aborted) this.#signalOnAbort();
    else this.#signal?.addEventListener('abort', this.#signalOnAbort, { once: true });
  }

  /** True until the connection closes or fails. */
  get isOpen(): boolean {
    return !this.#isClosed && this.#failure === null && !this.#socket.destroyed;
  }

  get state(): ClientState {
    if (!this.isOpen) return 'closed';
    if (this.#isEnding) return 'quitting';
    return this.#session.state;
  }

  /** Requests written and still waiting for their reply. */
  get pending(): number {
    return this.#queue.length;
  }

  /** Bytes written but not yet handed to the kernel: lets a caller bound its memory. */
  get bufferedBytes(): number {
    return this.#socket.writableLength;
  }

  /** `HELO` or `HELO <name>`; resolves with `100 OK`. */
  async helo(name?: string, options?: RequestOptions): Promise<Reply> {
    if (name !== undefined && /[\r\n]/.test(name)) {
      throw new InvalidArgumentError('a HELO name cannot contain CR or LF');
    }
    this.#checkCommandState('helo()');
    const line = Buffer.from(name ? `HELO ${name}` : 'HELO', 'utf8');
    return this.#request([line], Buffer.concat([line, this.#eol]), 'HELO', Replies.OK, options);
  }

  /**
   * `DATA`, then the payload on its own line; resolves with `300 DRCV`,
   * which means the payload is stored (docs/PROTOCOL.md §5). The payload is bytes
   * (a string is sent as UTF-8) and may hold anything but LF.
   */
  async data(payload: string | Buffer, options?: RequestOptions): Promise<Reply> {
    const bytes = typeof payload === 'string' ? Buffer.from(payload, 'utf8') : payload;
    if (!Buffer.isBuffer(bytes))
      throw new InvalidArgumentError('a payload must be a string or a Buffer');
    if (bytes.includes(LF)) {
      throw new InvalidArgumentError(
        'a payload cannot contain LF (it ends the line); send one DATA per line',
      );
    }
    this.#checkCommandState('data()');
    // Always CRLF: the server removes one CR before the LF, so a payload that
    // itself ends in CR keeps it. The bare-DATA form sends any payload as is,
    // including an empty one or one with leading blanks.
    // Without a terminator nothing can separate DATA from its payload: the
    // one-line form is the only one (docs/PROTOCOL.md §9).
    const wire =
      this.#eol.length === 0
        ? Buffer.concat([DATA_LINE.subarray(0, 4), SPACE, bytes])
        : Buffer.concat([DATA_LINE.subarray(0, 4), this.#eol, bytes, this.#eol]);
    return this.#request([DATA_LINE.subarray(0, 4), bytes], wire, 'DATA', Replies.DRCV, options);
  }

  /** `QUIT`; resolves with `200 BYE` once the connection is closed. */
  async quit(options?: RequestOptions): Promise<Reply> {
    this.#checkCommandState('quit()');
    const reply = await this.#request(
      [QUIT_LINE.subarray(0, 4)],
      Buffer.concat([QUIT_LINE.subarray(0, 4), this.#eol]),
      'QUIT',
      Replies.BYE,
      options,
    );
    // The server closes after 200 BYE (§3); end our side too and wait for it,
    // but not longer than for a reply.
    this.#socket.end(() => this.#socket.destroy());
    const timeoutMs = options?.timeoutMs ?? this.#timeoutMs;
    const timer = timeoutMs > 0 ? setTimeout(() => this.#socket.destroy(), timeoutMs) : null;
    await this.#closed;
    if (timer) clearTimeout(timer);
    return reply;
  }

  /**
   * Sends one raw line (CRLF is added) and resolves with whatever reply
   * comes: this is how to send `USER` and see `400 BCMD`. A bare `DATA` gets
   * no reply of its own; its promise resolves with the reply to the payload
   * line sent after it.
   */
  async send(line: string | Buffer, options?: RequestOptions): Promise<Reply> {
    const bytes = typeof line === 'string' ? Buffer.from(line, 'utf8') : line;
    if (!Buffer.isBuffer(bytes))
      throw new InvalidArgumentError('a line must be a string or a Buffer');
    if (bytes.includes(LF))
      throw new InvalidArgumentError('a line cannot contain LF (it ends the line)');
    // Without a terminator, the blanks in `DATA ` are meaningful (§9).
    const sent =
      this.#session.state === 'command' && this.#eol.length > 0 ? withoutPadding(bytes) : bytes;
    return this.#request([sent], Buffer.concat([sent, this.#eol]), labelOf(sent), null, options);
  }

  /**
   * Ends the connection without QUIT. Requests still waiting reject with
   * ClosedError (their replies might come, but nobody would read them).
   */
  async close(options: { lingerMs?: number } = {}): Promise<void> {
    const lingerMs = options.lingerMs ?? 0;
    if (!this.#isClosed) {
      this.#isClosedByUs = true;
      if (lingerMs > 0 && this.#queue.length === 0) {
        // Half-close and read until the server closes too, for a while: a
        // line it still sends is seen (`unexpected`), not lost.
        this.#socket.end();
        const timer = setTimeout(() => this.#socket.destroy(), lingerMs);
        await this.#closed;
        clearTimeout(timer);
        return;
      }
      if (this.#queue.length > 0) {
        // Not a failure: the caller asked for it, so `close` reports null.
        this.#rejectAll(
          new ClosedError('the connection was closed by close() before the reply arrived'),
        );
        this.#socket.destroy();
      } else {
        this.#socket.end(() => this.#socket.destroy());
      }
    }
    await this.#closed;
  }

  #checkCommandState(method: string): void {
    // §3: after a bare DATA the next line is payload, whatever it says.
    if (this.isOpen && !this.#isEnding && this.#session.state === 'payload') {
      throw new InvalidArgumentError(
        `${method} cannot be used now: a bare DATA sent with send() is waiting for its payload line`,
      );
    }
  }

  #request(
    lines: Buffer[],
    wire: Buffer,
    label: string,
    expected: ReplyInfo | null,
    options: RequestOptions | undefined,
  ): Promise<Reply> {
    const signal = options?.signal;
    const timeoutMs = options?.timeoutMs ?? this.#timeoutMs;
    checkDuration('timeoutMs', timeoutMs);
    if (signal?.aborted) {
      return Promise.reject(
        new AbortError(`${label} was aborted before it was sent`, { cause: signal.reason }),
      );
    }
    if (!this.isOpen || !this.#socket.writable) return Promise.reject(this.#closedError());
    if (this.#isEnding) {
      const why = this.#isRejected ? 'a line looked like HTTP' : 'QUIT was sent';
      return Promise.reject(
        new ClosedError(`cannot send ${label}: the server is closing the connection (${why})`),
      );
    }
    // A payload line is named after its DATA in messages, not after its first word.
    if (this.#session.state === 'payload') label = 'DATA';
    for (const line of lines) this.#track(line);
    const last = lines[lines.length - 1];
    if (
      this.#eol.length === 0 &&
      this.#session.state === 'payload' &&
      last !== undefined &&
      isBlank(last[last.length - 1])
    ) {
      // §9: a silence-ended `DATA ` is DATA with an empty payload.
      this.#track(EMPTY);
    }
    const sharesNextReply = this.#session.state === 'payload';

    return new Promise<Reply>((resolve, reject) => {
      const entry: Pending = {
        label,
        expected,
        sharesNextReply,
        resolve,
        reject,
        timer: undefined,
        signal,
        onAbort: undefined,
      };
      // A bare DATA waits for the user's payload line, however long that
      // takes; the timeout starts with that line, which shares its reply.
      if (timeoutMs > 0 && !sharesNextReply) {
        entry.timer = setTimeout(() => {
          this.#fail(
            new TimeoutError(`no reply to ${label} within ${formatDuration(timeoutMs)}`),
            entry,
          );
        }, timeoutMs);
      }
      if (signal) {
        entry.onAbort = () => {
          this.#fail(new AbortError(`${label} was aborted`, { cause: signal.reason }), entry);
        };
        signal.addEventListener('abort', entry.onAbort, { once: true });
      }
      this.#queue.push(entry);
      this.#write(wire);
    });
  }

  /** Replays a sent line through the session to follow the server's state. */
  #track(line: Buffer): void {
    if (this.#session.state === 'payload') {
      // A payload line only moves the session back to `command`; its bytes
      // don't matter here, and the session would copy them.
      this.#session.onLine(EMPTY, 0, 0);
      return;
    }
    const action = this.#session.onLine(line, 0, line.length);
    // After QUIT the server closes; after an HTTP-looking line (§8) it closes
    // without a reply. Either way nothing sent later would be read.
    if (action.type === 'reject' || (action.type === 'reply' && action.reply === Replies.BYE)) {
      this.#isEnding = true;
      this.#isRejected = action.type === 'reject';
    }
  }

  #write(wire: Buffer): void {
    // Gather the requests made in one tick into one write: far fewer
    // syscalls when pipelining, no delay for a lone request.
    if (!this.#isCorked) {
      this.#isCorked = true;
      this.#socket.cork();
      process.nextTick(() => {
        this.#isCorked = false;
        this.#socket.uncork();
      });
    }
    this.#socket.write(wire);
  }

  readonly #replySink: ReplySink = {
    onReply: (reply) => this.#onReply(reply),
    onMalformed: (line) => {
      if (this.#isTolerant) {
        this.emit('unexpected', line);
        return;
      }
      this.#fail(
        new ClosedError(`${this.address} sent something that is not a helo reply: ${line}`),
      );
    },
  };

  readonly #socketOnData = (chunk: Buffer): void => {
    this.#parser.push(chunk, this.#replySink);
  };

  /** The server's FIN: an unfinished line left over is shown, not dropped. */
  readonly #socketOnEnd = (): void => {
    if (this.#isTolerant) this.#parser.end(this.#replySink);
  };

  #onReply(reply: Reply): void {
    if (this.#failure !== null) return;
    if (
      reply.code === Replies.BYE.code ||
      reply.code === Replies.TOUT.code ||
      reply.code === Replies.BUSY.code
    ) {
      this.#closingReply = reply;
    }
    const head = this.#queue.peek();
    if (
      head?.sharesNextReply === true &&
      this.#queue.length === 1 &&
      this.#closingReply !== reply
    ) {
      // A reply to a bare DATA before its payload line went out: the server
      // answered too early (docs/PROTOCOL.md §3). Taking it as DATA's reply
      // would shift every later reply by one.
      const what = `${JSON.stringify(reply.line)} came before DATA's payload line was sent`;
      if (this.#isTolerant) {
        this.emit('unexpected', what);
      } else {
        this.#fail(new ClosedError(`${this.address} answered too early: ${what}`));
      }
      return;
    }
    if (
      this.#isTolerant &&
      head === undefined &&
      reply.code !== Replies.TOUT.code &&
      reply.code !== Replies.BUSY.code
    ) {
      // Only 408 TOUT and 503 BUSY may come unasked (the server then closes).
      this.emit(
        'unexpected',
        `${JSON.stringify(reply.line)} (a reply with nothing waiting for it)`,
      );
      return;
    }
    this.emit('reply', reply);
    let entry = this.#queue.shift();
    if (entry === undefined) {
      this.emit('unsolicited', reply);
      return;
    }
    for (;;) {
      this.#settle(entry, reply);
      // A bare DATA and its payload line share one reply.
      if (!entry.sharesNextReply) break;
      const next = this.#queue.shift();
      if (next === undefined) break;
      entry = next;
    }
  }

  #settle(entry: Pending, reply: Reply): void {
    clearPending(entry);
    const { expected } = entry;
    if (expected !== null && (reply.code !== expected.code || reply.token !== expected.token)) {
      entry.reject(new ReplyError(reply, `${expected.code} ${expected.token}`));
    } else {
      entry.resolve(reply);
    }
  }

  /**
   * Ends the connection because of `error`: `culprit` (the request that
   * timed out or was aborted) rejects with it, every other waiting request
   * with a ClosedError that points at it. Without a culprit all get `error`.
   */
  #fail(error: HeloError, culprit?: Pending): void {
    this.#failure ??= error;
    const others =
      culprit === undefined
        ? error
        : new ClosedError(`the client closed the connection: ${error.message}`, {
            cause: error,
          });
    this.#rejectAll(others, culprit, error);
    this.#socket.destroy();
  }

  /**
   * Rejects every waiting request with `error`; `culprit`, and a bare DATA
   * whose reply it shares, with `own`.
   */
  #rejectAll(error: Error, culprit?: Pending, own?: Error): void {
    const entries = this.#queue.drain();
    entries.forEach((entry, i) => {
      clearPending(entry);
      const isCulprit = entry === culprit || (entry.sharesNextReply && entries[i + 1] === culprit);
      entry.reject(isCulprit ? (own ?? error) : error);
    });
  }

  readonly #socketOnError = (error: NodeJS.ErrnoException): void => {
    // A reset after 200 BYE or after close() loses nothing.
    if (this.#isClosedByUs || this.#hasSaidBye()) return;
    this.#failure ??= new ClosedError(
      error.code === 'ECONNRESET'
        ? `the connection to ${this.address} was reset`
        : `the connection to ${this.address} failed: ${error.message}`,
      { cause: error },
    );
  };

  readonly #signalOnAbort = (): void => {
    this.#isClosedByUs = true;
    this.#fail(new AbortError('the connection was aborted', { cause: this.#signal?.reason }));
  };

  #socketOnClose(): void {
    this.#isClosed = true;
    this.#signal?.removeEventListener('abort', this.#signalOnAbort);
    const isExpected = this.#failure === null && (this.#isClosedByUs || this.#hasSaidBye());
    const reason = isExpected ? null : (this.#failure ?? this.#closedError());
    this.#failure ??= reason;
    this.#rejectAll(reason ?? this.#closedError());
    this.emit('close', reason);
  }

  /** QUIT was sent and answered: the server closes next, as agreed. */
  #hasSaidBye(): boolean {
    return this.#isEnding && this.#closingReply?.code === Replies.BYE.code;
  }

  /** The error for a request that finds the connection gone. */
  #closedError(): HeloError {
    if (this.#failure !== null) return this.#failure;
    if (this.#isClosedByUs) return new ClosedError('the connection is closed');
    if (this.#isRejected) {
      return new ClosedError(
        `${this.address} closed the connection without a reply: a line looked like HTTP (docs/PROTOCOL.md §8)`,
      );
    }
    const after = this.#closingReply ? ` after ${this.#closingReply.line}` : '';
    return new ClosedError(`${this.address} closed the connection${after}`);
  }
}

function clearPending(entry: Pending): void {
  if (entry.timer !== undefined) clearTimeout(entry.timer);
  if (entry.onAbort !== undefined) entry.signal?.removeEventListener('abort', entry.onAbort);
}

/** The first word of a raw line, for messages (`USER`, `"GET"`...). */
function labelOf(line: Buffer): string {
  const text = line.toString('latin1', 0, Math.min(line.length, 32));
  const word = text.trimStart().split(/[ \t\r]/, 1)[0] ?? '';
  return word === '' ? 'an empty line' : JSON.stringify(word).slice(1, -1);
}

/** What a client talks over: a TCP, TLS or Unix socket, or a WebSocket as a stream of lines. */
export type ClientSocket = Duplex & { setNoDelay(noDelay?: boolean): unknown };

type StreamTarget =
  | { kind: 'ws'; url: string; address: string }
  | { kind: 'tcp'; host: string; port: number; address: string }
  | { kind: 'tls'; host: string; port: number; tls: ClientTlsOptions; address: string }
  | { kind: 'unix'; path: string; address: string };

/** Connects, retrying while `waitMs` allows (`--wait`). */
async function openSocket(
  target: StreamTarget,
  timeoutMs: number,
  waitMs: number,
  signal: AbortSignal | undefined,
): Promise<ClientSocket> {
  const deadline = performance.now() + waitMs;
  let delayMs = FIRST_RETRY_MS;
  let tries = 0;
  for (;;) {
    tries++;
    try {
      return await attemptConnect(target, timeoutMs, signal);
    } catch (error) {
      if (error instanceof AbortError || error instanceof ConnectError) throw error;
      const code = (error as NodeJS.ErrnoException).code ?? '';
      const remainingMs = deadline - performance.now();
      if (!RETRYABLE.has(code) || remainingMs <= 0) {
        throw connectError(error as NodeJS.ErrnoException, target, tries > 1 ? waitMs : 0);
      }
      try {
        await sleep(Math.min(delayMs, remainingMs), undefined, { signal });
      } catch (sleepError) {
        throw new AbortError('the connection attempt was aborted', { cause: sleepError });
      }
      delayMs = Math.min(delayMs * 2, MAX_RETRY_MS);
    }
  }
}

/** A WebSocket to `/ws` (docs/PROTOCOL.md §7), seen as a stream of lines. */
function attemptWebSocket(
  target: { url: string; address: string },
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<ClientSocket> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new AbortError('the connection attempt was aborted', { cause: signal.reason }));
      return;
    }
    const ws = new WebSocket(target.url, {
      handshakeTimeout: timeoutMs > 0 ? timeoutMs : undefined,
    });
    const finish = (error: Error | null): void => {
      signal?.removeEventListener('abort', onAbort);
      ws.off('open', onOpen);
      ws.off('error', onError);
      ws.off('unexpected-response', onRefused);
      if (error === null) {
        const raw = (ws as unknown as { _socket?: net.Socket })._socket;
        resolve(
          new WebSocketLineStream(ws, { address: raw?.remoteAddress, port: raw?.remotePort }),
        );
      } else {
        ws.on('error', () => undefined);
        ws.terminate();
        reject(error);
      }
    };
    const onOpen = (): void => finish(null);
    const onError = (error: Error): void => finish(error);
    const onRefused = (
      _request: unknown,
      response: { statusCode?: number; statusMessage?: string },
    ): void =>
      finish(
        new ConnectError(
          `the WebSocket upgrade at ${target.address} was refused: HTTP ${response.statusCode} ${response.statusMessage ?? ''}`.trim(),
        ),
      );
    const onAbort = (): void =>
      finish(new AbortError('the connection attempt was aborted', { cause: signal?.reason }));
    ws.once('open', onOpen);
    ws.once('error', onError);
    ws.once('unexpected-response', onRefused);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

function openTransport(target: Exclude<StreamTarget, { kind: 'ws' }>): {
  socket: net.Socket;
  readyEvent: string;
} {
  switch (target.kind) {
    case 'unix':
      return { socket: net.connect({ path: target.path }), readyEvent: 'connect' };
    case 'tcp':
      return {
        socket: net.connect({ host: target.host, port: target.port }),
        readyEvent: 'connect',
      };
    case 'tls': {
      const { ca, cert, key } = target.tls;
      // SNI carries names, not addresses: an IP host is checked without it.
      const servername = target.tls.servername ?? (net.isIP(target.host) ? undefined : target.host);
      const socket = tls.connect({
        host: target.host,
        port: target.port,
        ...(ca === undefined ? {} : { ca }),
        ...(cert === undefined ? {} : { cert }),
        ...(key === undefined ? {} : { key }),
        ...(servername === undefined ? {} : { servername }),
      });
      return { socket, readyEvent: 'secureConnect' };
    }
  }
}

/** One connection attempt. Rejects with the socket's own error, or ConnectError on timeout. */
function attemptConnect(
  target: StreamTarget,
  timeoutMs: number,
  signal: AbortSignal | undefined,
): Promise<ClientSocket> {
  if (target.kind === 'ws') return attemptWebSocket(target, timeoutMs, signal);
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(new AbortError('the connection attempt was aborted', { cause: signal.reason }));
      return;
    }
    const { socket, readyEvent } = openTransport(target);
    let timer: NodeJS.Timeout | undefined;
    const finish = (error: Error | null): void => {
      if (timer !== undefined) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      socket.off(readyEvent, onConnect);
      socket.off('error', onError);
      if (error === null) {
        resolve(socket);
      } else {
        socket.destroy();
        reject(error);
      }
    };
    const onConnect = (): void => finish(null);
    const onError = (error: Error): void => finish(error);
    const onAbort = (): void =>
      finish(new AbortError('the connection attempt was aborted', { cause: signal?.reason }));
    socket.once(readyEvent, onConnect);
    socket.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
    if (timeoutMs > 0) {
      timer = setTimeout(
        () =>
          finish(
            new ConnectError(
              `no answer from ${target.address} within ${formatDuration(timeoutMs)}`,
            ),
          ),
        timeoutMs,
      );
    }
  });
}

/** One line that says what failed and where (docs/ERRORS.md). */
function connectError(
  error: NodeJS.ErrnoException,
  target: StreamTarget,
  waitedMs: number,
): ConnectError {
  const { address } = target;
  const host =
    target.kind === 'unix' ? target.path : target.kind === 'ws' ? target.url : target.host;
  let message: string;
  switch (error.code) {
    case 'ENOENT':
      message = `no socket at ${address} — is the server running?`;
      break;
    case 'ECONNREFUSED':
      message = `connection refused at ${address} — is the server running?`;
      break;
    case 'ECONNRESET':
      message = `connection reset by ${address} — is it a helo server?`;
      break;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      message = `cannot resolve host '${host}'`;
      break;
    case 'ETIMEDOUT':
      message = `no answer from ${address}`;
      break;
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
      message = `${address} is unreachable (${error.code})`;
      break;
    default:
      // TLS: an untrusted or mismatched certificate, or a refused client certificate.
      message =
        target.kind === 'tls'
          ? `TLS connection to ${address} failed: ${error.message}`
          : `cannot connect to ${address}: ${error.message}`;
  }
  return new ConnectError(message + keptTrying(waitedMs), { cause: error });
}

/**
 * An array-backed FIFO whose `shift()` does not move the remaining items:
 * thousands of requests may be in flight.
 */
class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;

  get length(): number {
    return this.#items.length - this.#head;
  }

  push(item: T): void {
    this.#items.push(item);
  }

  /** The oldest item, left in place. */
  peek(): T | undefined {
    return this.#items[this.#head];
  }

  shift(): T | undefined {
    if (this.#head === this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    if (this.#head === this.#items.length) {
      this.#items = [];
      this.#head = 0;
    } else if (this.#head >= 1024 && this.#head * 2 >= this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }

  /** Removes and returns every item, oldest first. */
  drain(): T[] {
    const items = this.#items.slice(this.#head) as T[];
    this.#items = [];
    this.#head = 0;
    return items;
  }
}

function isBlank(byte: number | undefined): boolean {
  return byte === 0x20 || byte === 0x09;
}

/**
 * A bare DATA or QUIT padded with blanks means the same to the server
 * without them (docs/PROTOCOL.md §2). Sent bare, it cannot exceed the server's
 * line limit, whose 401 LONG would otherwise be matched to the wrong request.
 */
function withoutPadding(line: Buffer): Buffer {
  let start = 0;
  let end = line.length;
  while (start < end && isBlank(line[start])) start++;
  while (end > start && isBlank(line[end - 1])) end--;
  if (end - start !== 4 || (start === 0 && end === line.length)) return line;
  const word = line.toString('latin1', start, end).toUpperCase();
  return word === 'DATA' || word === 'QUIT' ? line.subarray(start, end) : line;
}
