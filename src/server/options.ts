/**
 * Server options: the spec's defaults in one frozen place (cli.md), and
 * validation done once, at start-up, naming the option and the value.
 */
import { InvalidOptionError } from '../errors.js';

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface ServerOptions {
  /** Address every listener binds. Default `127.0.0.1` (protocol.md §1: loopback). */
  readonly host: string;
  /** TCP port; 0 picks a free one. Default 7777. */
  readonly port: number;
  /** Longest line, without its terminator, in bytes. Default 8192 (protocol.md §2). */
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
  /** protocol.md §9: silence this long ends a partial line; 0 = off (default). */
  readonly unterminatedAfterMs: number;
  /**
   * Unsent reply bytes above which the server stops reading from a client
   * until the client reads (backpressure). Default 64 KiB.
   */
  readonly highWaterMarkBytes: number;
  /**
   * On shutdown, sessions still busy after this long are cut off so that the
   * process exits well within cli.md's 10 seconds. Default 8000 ms.
   */
  readonly shutdownGraceMs: number;
  readonly logLevel: LogLevel;
}

export const DEFAULTS: ServerOptions = Object.freeze({
  host: '127.0.0.1',
  port: 7777,
  maxLineBytes: 8192,
  idleTimeoutMs: 300_000,
  maxConnections: 10_000,
  maxConnectionsPerIp: 0,
  slowReaderTimeoutMs: 30_000,
  unterminatedAfterMs: 0,
  highWaterMarkBytes: 64 * 1024,
  shutdownGraceMs: 8_000,
  logLevel: 'info',
});

/** Timers beyond this overflow Node's 32-bit timer delay. */
const MAX_TIMER_MS = 2_147_483_647;

function checkInt(name: string, value: number, min: number, max: number): void {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOptionError(`${name} must be an integer from ${min} to ${max}, got ${value}`);
  }
}

/** Merges `given` over the defaults into a new object and validates it. */
export function resolveServerOptions(given: Partial<ServerOptions> = {}): ServerOptions {
  const options: ServerOptions = { ...DEFAULTS };
  for (const [key, value] of Object.entries(given)) {
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
  checkInt('highWaterMarkBytes', options.highWaterMarkBytes, 1, 1 << 30);
  checkInt('shutdownGraceMs', options.shutdownGraceMs, 0, MAX_TIMER_MS);
  if (!(LOG_LEVELS as readonly string[]).includes(options.logLevel)) {
    throw new InvalidOptionError(
      `logLevel must be one of ${LOG_LEVELS.join(', ')}, got '${options.logLevel}'`,
    );
  }
  return Object.freeze(options);
}
