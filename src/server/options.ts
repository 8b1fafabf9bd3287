/**
 * Server options: the defaults in one frozen place (README, `helo server`), and
 * validation done once, at start-up, naming the option and the value.
 */
import { availableParallelism } from 'node:os';
import {
  DEFAULT_HOST,
  DEFAULT_IDLE_TIMEOUT_MS,
  DEFAULT_MAX_LINE_BYTES,
  DEFAULT_PORT,
  MAX_TIMER_MS,
} from '../defaults.js';
import { InvalidOptionError } from '../errors.js';
import { httpTokenFor } from './exposure.js';
import { proxyAllowList } from './proxy-stage.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * How the server serves many clients (the lab's central lesson):
 * - `event-loop`: one process, every connection on one event loop (default);
 * - `sequential`: one client at a time, the others wait their turn;
 * - `fork`: a new child process for each connection;
 * - `cluster`: pre-forked worker processes sharing the listening socket;
 * - `threads`: one event loop for the sockets, a pool of worker threads for
 *   each request's CPU work (threads/threads-server.ts).
 */
export const SERVER_MODES = ['event-loop', 'sequential', 'fork', 'cluster', 'threads'] as const;
export type ServerMode = (typeof SERVER_MODES)[number];

export interface ServerOptions {
  /** Concurrency model. Default `event-loop`. */
  readonly mode: ServerMode;
  /** Worker processes in `cluster` mode. Default: the number of CPUs. */
  readonly workers: number;
  /** Worker threads in `threads` mode. Default: the number of CPUs. */
  readonly threads: number;
  /** Address every listener binds. Default `127.0.0.1` (docs/PROTOCOL.md §1: loopback). */
  readonly host: string;
  /** TCP port; 0 picks a free one. Default 7777. */
  readonly port: number;
  /** Longest line, without its terminator, in bytes. Default 8192 (docs/PROTOCOL.md §2). */
  readonly maxLineBytes: number;
  /** No complete line for this long -> `408 TOUT` and close; 0 = off. Default 300 000 ms. */
  readonly idleTimeoutMs: number;
  /** Server-wide connection limit; beyond it `503 BUSY` and close. Default 10 000. */
  readonly maxConnections: number;
  /** Connections from one address; 0 = unlimited. Default 0. */
  readonly maxConnectionsPerIp: number;
  /**
   * A client whose unsent replies stay above `highWaterMarkBytes` this long
   * is disconnected. Default 30 000 ms; 0 = off.
   */
  readonly slowReaderTimeoutMs: number;
  /** docs/PROTOCOL.md §9: silence this long ends a partial line; 0 = off (default). */
  readonly unterminatedAfterMs: number;
  /**
   * docs/PROTOCOL.md §11: take telnet's control sequences out of TCP, TLS and
   * Unix streams before framing and refuse its DO/WILL. Off by default:
   * payloads are byte-exact and a binary one may hold the same bytes.
   */
  readonly telnet: boolean;
  /**
   * Unsent reply bytes above which the server stops reading from a client
   * until the client reads (backpressure). Default 64 KiB.
   */
  readonly highWaterMarkBytes: number;
  /**
   * On shutdown, sessions still busy after this long are cut off so that the
   * process exits well within the 10 seconds the README promises ("Exit
   * statuses and signals"). Default 8000 ms.
   */
  readonly shutdownGraceMs: number;
  readonly logLevel: LogLevel;
  /**
   * Experiment knob: each request waits this long before its reply, without
   * blocking the process (an I/O-bound service). Default 0 (off).
   */
  readonly workMs: number;
  /**
   * Experiment knob: each request keeps the CPU busy this long before its
   * reply (a compute-bound service). Default 0 (off).
   */
  readonly workCpuMs: number;
  /** `--unix PATH`: also listen on this Unix domain socket; null = off. */
  readonly unixPath: string | null;
  /** Permissions of the Unix socket file (e.g. 0o660); null keeps the umask's. */
  readonly unixMode: number | null;
  /** `--tls-port N`: also listen for TLS here; null = off. */
  readonly tlsPort: number | null;
  /** PEM certificate (chain) and key files for TLS. */
  readonly tlsCertPath: string | null;
  readonly tlsKeyPath: string | null;
  /** PEM CA bundle for client certificates (mutual TLS); null = none. */
  readonly tlsCaPath: string | null;
  /** Refuse TLS clients without a certificate signed by `tlsCaPath`. */
  readonly tlsRequireClientCert: boolean;
  /** A TLS handshake not finished this long after the connection is cut off. Default 10 000 ms. */
  readonly tlsHandshakeTimeoutMs: number;
  /** `--udp-port N`: also answer datagrams here (docs/PROTOCOL.md §6); null = off. */
  readonly udpPort: number | null;
  /** `--http-port N`: WebSocket on `/ws` (docs/PROTOCOL.md §7) and, later, the web pages; null = off. */
  readonly httpPort: number | null;
  /** `--ws-origin`: browser origins allowed on `/ws` besides the server's own. */
  readonly wsOrigins: readonly string[];
  /**
   * `--http-token`: requests to the HTTP port (but `/healthz`, `/readyz`)
   * must carry it; null = none needed. resolveServerOptions makes one up
   * when the port is reachable beyond loopback and none is given (exposure.ts).
   */
  readonly httpToken: string | null;
  /**
   * `--proxy-protocol` (docs/PROTOCOL.md §10): every TCP, TLS and Unix
   * connection must begin with a PROXY protocol header naming the real client.
   */
  readonly proxyProtocol: boolean;
  /** `--proxy-allow`: the CIDR blocks of balancers trusted to send it. Default loopback. */
  readonly proxyAllow: readonly string[];
  /** `--proxy-timeout`: a header not complete this long after accept closes the connection. */
  readonly proxyTimeoutMs: number;
}

export const DEFAULTS: ServerOptions = Object.freeze({
  mode: 'event-loop',
  workers: availableParallelism(),
  threads: availableParallelism(),
  host: DEFAULT_HOST,
  port: DEFAULT_PORT,
  maxLineBytes: DEFAULT_MAX_LINE_BYTES,
  idleTimeoutMs: DEFAULT_IDLE_TIMEOUT_MS,
  maxConnections: 10_000,
  maxConnectionsPerIp: 0,
  slowReaderTimeoutMs: 30_000,
  unterminatedAfterMs: 0,
  telnet: false,
  highWaterMarkBytes: 64 * 1024,
  shutdownGraceMs: 8_000,
  logLevel: 'info',
  workMs: 0,
  workCpuMs: 0,
  unixPath: null,
  unixMode: null,
  tlsPort: null,
  tlsCertPath: null,
  tlsKeyPath: null,
  tlsCaPath: null,
  tlsRequireClientCert: false,
  tlsHandshakeTimeoutMs: 10_000,
  udpPort: null,
  httpPort: null,
  wsOrigins: [],
  httpToken: null,
  proxyProtocol: false,
  proxyAllow: Object.freeze(['127.0.0.0/8', '::1/128']),
  proxyTimeoutMs: 3_000,
});

function checkInt(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(`${name} must be between ${min} and ${max}, got ${value}`);
  }
}

/**
 * Merges `given` over the defaults into a new object and validates it. A
 * message names the option first (`port must be ...`): the CLI swaps in the
 * flag's name. An HTTP port reachable beyond loopback without a token gets
 * a generated one, for library users as for `helo server`.
 */
export function resolveServerOptions(given: Partial<ServerOptions> = {}): ServerOptions {
  const options: ServerOptions = { ...DEFAULTS };
  // Only the options themselves: callers pass objects that carry more (a
  // store, counters), and the options are copied to other processes as JSON.
  for (const key of Object.keys(DEFAULTS) as (keyof ServerOptions)[]) {
    const value = given[key];
    if (value !== undefined) (options as unknown as Record<string, unknown>)[key] = value;
  }
  if (typeof options.host !== 'string' || options.host === '') {
    throw new InvalidOptionError(`host must be a non-empty address, got '${options.host}'`);
  }
  checkInt('port', options.port, 0, 65535);
  checkInt('maxLineBytes', options.maxLineBytes, 1, 1 << 30);
  checkInt('idleTimeoutMs', options.idleTimeoutMs, 0, MAX_TIMER_MS);
  checkInt('maxConnections', options.maxConnections, 1, 1 << 30);
  checkInt('maxConnectionsPerIp', options.maxConnectionsPerIp, 0, 1 << 30);
  checkInt('slowReaderTimeoutMs', options.slowReaderTimeoutMs, 0, MAX_TIMER_MS);
  checkInt('unterminatedAfterMs', options.unterminatedAfterMs, 0, MAX_TIMER_MS);
  if (typeof options.telnet !== 'boolean') {
    throw new InvalidOptionError(`telnet must be true or false, got '${String(options.telnet)}'`);
  }
  checkInt('highWaterMarkBytes', options.highWaterMarkBytes, 1, 1 << 30);
  checkInt('shutdownGraceMs', options.shutdownGraceMs, 0, MAX_TIMER_MS);
  checkInt('workers', options.workers, 1, 1024);
  checkInt('threads', options.threads, 1, 1024);
  checkInt('workMs', options.workMs, 0, MAX_TIMER_MS);
  checkInt('workCpuMs', options.workCpuMs, 0, 60_000);
  if (options.tlsPort !== null) {
    checkInt('tlsPort', options.tlsPort, 0, 65535);
    if (options.tlsCertPath === null || options.tlsKeyPath === null) {
      throw new InvalidOptionError(
        'a TLS port needs a certificate and a key (--tls-cert, --tls-key)',
      );
    }
  }
  if (options.tlsRequireClientCert && options.tlsCaPath === null) {
    throw new InvalidOptionError(
      'requiring client certificates needs the CA that signs them (--tls-ca)',
    );
  }
  checkInt('tlsHandshakeTimeoutMs', options.tlsHandshakeTimeoutMs, 1, MAX_TIMER_MS);
  if (options.udpPort !== null) checkInt('udpPort', options.udpPort, 0, 65535);
  if (options.httpPort !== null) checkInt('httpPort', options.httpPort, 0, 65535);
  for (const origin of options.wsOrigins) {
    if (!/^https?:\/\/[^\s/]+$/i.test(origin)) {
      throw new InvalidOptionError(
        `a WebSocket origin is scheme://host[:port] with nothing after it, got '${origin}'`,
      );
    }
  }
  if (options.httpToken !== null && !/^[A-Za-z0-9._~-]{16,256}$/.test(options.httpToken)) {
    throw new InvalidOptionError(
      'an HTTP token is 16 to 256 characters from A-Z a-z 0-9 . _ ~ - (it travels in URLs)',
    );
  }
  if (typeof options.proxyProtocol !== 'boolean') {
    throw new InvalidOptionError(
      `proxyProtocol must be true or false, got '${String(options.proxyProtocol)}'`,
    );
  }
  proxyAllowList(options.proxyAllow);
  checkInt('proxyTimeoutMs', options.proxyTimeoutMs, 1, MAX_TIMER_MS);
  const http = httpTokenFor(options.host, options.httpPort, options.httpToken);
  (options as { httpToken: string | null }).httpToken = http.token;
  if (options.unixMode !== null) checkInt('unixMode', options.unixMode, 0, 0o777);
  if (options.unixPath !== null && options.unixPath === '') {
    throw new InvalidOptionError('the Unix socket path must not be empty');
  }
  const extraListeners =
    options.unixPath !== null ||
    options.tlsPort !== null ||
    options.udpPort !== null ||
    options.httpPort !== null;
  if (options.mode === 'fork' && extraListeners) {
    throw new InvalidOptionError(
      'fork mode serves TCP only; --unix, --tls-port, --udp-port and --http-port need another --mode',
    );
  }
  if (!(SERVER_MODES as readonly string[]).includes(options.mode)) {
    throw new InvalidOptionError(
      `mode must be one of ${SERVER_MODES.join(', ')}, got '${options.mode}'`,
    );
  }
  if (!(LOG_LEVELS as readonly string[]).includes(options.logLevel)) {
    throw new InvalidOptionError(
      `logLevel must be one of ${LOG_LEVELS.join(', ')}, got '${options.logLevel}'`,
    );
  }
  return Object.freeze(options);
}
