/**
 * Structured JSON logs on stderr (README, `helo server`), through pino.
 *
 * Writes are asynchronous and buffered (pino's SonicBoom with `minLength`)
 * so that one summary line per session does not show in the benchmarks:
 * unbuffered, every line was its own write(2) on a thread-pool thread plus a
 * wake-up of the event loop, about a sixth of the CPU a whole session costs
 * (docs/PERFORMANCE.md). Lines wait until LOG_BUFFER_BYTES have gathered or
 * FLUSH_AFTER_MS has passed since the first of them, so a quiet server's
 * lines still show at once to a person (or a test) reading stderr; a
 * warning or an error is written at once.
 * `flushLogger()` runs before a normal exit and after a stop signal, and
 * pino writes the buffer out synchronously on `exit`, which Node also emits
 * after an uncaught exception: only a SIGKILL loses the last few lines.
 * Payload contents are never passed to the logger anywhere in helo.
 */
import { pino, type DestinationStream, type Logger } from 'pino';
import type { ConnectionSummary } from './connection.js';
import type { LogLevel } from './options.js';

export type { Logger };

/**
 * Each write is handed to a thread of libuv's pool and its completion wakes
 * the event loop: on a busy core that round trip costs as much as many
 * lines, so writes are few and large. At 5,000 sessions/s (about 1.2 MB/s of
 * summaries) the timer, not the size, starts nearly every write: about 50
 * writes a second.
 */
const LOG_BUFFER_BYTES = 32 * 1024;
const MAX_WRITE_BYTES = 64 * 1024;
const FLUSH_AFTER_MS = 20;
/** In `{"level":30,...`: the first digit of the level, and the one of warn (40). */
const LEVEL_DIGIT_AT = '{"level":'.length;
const WARN_DIGIT = '4'.charCodeAt(0);

export function createLogger(level: LogLevel, fd = 2): Logger {
  if (level === 'silent') return pino({ level: 'silent' });
  const destination = bufferedDestination(fd);
  const logger = pino(
    { level, base: { pid: process.pid }, timestamp: isoTimeOfThisMs },
    destination,
  );
  destinations.set(logger, destination);
  return logger;
}

/** Where each logger made by createLogger() writes, for logSessionClosed(). */
const destinations = new WeakMap<Logger, DestinationStream>();
const PID_FIELD = `,"pid":${process.pid}`;

/**
 * Logs the summary of a session that has closed (connection.ts): the one
 * line every session writes, so it is written by this template rather than
 * by pino's general serializer, which walks the object key by key, escapes
 * every key and value character by character and builds the line from many
 * pieces. Same bytes as `logger.info(summary, 'session closed')` (tested in
 * test/server/logger.test.ts); in a W4 run 2.5 KB allocated per session went
 * into pino's serializer, and the line took about 2.4 µs to make against
 * 0.4 µs here (docs/PERFORMANCE.md). A logger made elsewhere (a library
 * user's) gets the call to pino.
 */
export function logSessionClosed(logger: Logger, summary: ConnectionSummary): void {
  const destination = destinations.get(logger);
  if (destination === undefined) {
    logger.info(summary, 'session closed');
    return;
  }
  if (!logger.isLevelEnabled('info')) return;
  const { session, peer, transport, reason, proxy } = summary;
  destination.write(
    `{"level":30${isoTimeOfThisMs()}${PID_FIELD},"session":${JSON.stringify(session)}` +
      `,"peer":${JSON.stringify(peer)},"transport":${JSON.stringify(transport)}` +
      `,"durationMs":${jsonNumber(summary.durationMs)},"commands":${jsonNumber(summary.commands)}` +
      `,"payloads":${jsonNumber(summary.payloads)}` +
      `,"failedPayloads":${jsonNumber(summary.failedPayloads)}` +
      `,"bytesIn":${jsonNumber(summary.bytesIn)},"bytesOut":${jsonNumber(summary.bytesOut)}` +
      `,"reason":${JSON.stringify(reason)}` +
      (proxy === undefined ? '' : `,"proxy":${JSON.stringify(proxy)}`) +
      `,"msg":"session closed"}\n`,
  );
}

/** As pino writes a number: `null` for NaN and the infinities. */
function jsonNumber(value: number): string {
  return Number.isFinite(value) ? String(value) : 'null';
}

let timeMs = -1;
let timeField = '';

/**
 * pino's `stdTimeFunctions.isoTime`, made once per millisecond: a busy
 * server logs several session summaries in the same millisecond, and
 * formatting the date was about a fifth of what logging one cost (docs/PERFORMANCE.md).
 */
function isoTimeOfThisMs(): string {
  const now = Date.now();
  if (now !== timeMs) {
    timeMs = now;
    timeField = `,"time":"${new Date(now).toISOString()}"`;
  }
  return timeField;
}

/**
 * SonicBoom's own `periodicFlush` would wake an idle server forever; this
 * timer is armed only by a line written while none is pending (one Timeout,
 * re-armed with refresh(): nothing allocated per line).
 *
 * A flush asked for while a write is in progress does nothing, and when that
 * write ends SonicBoom keeps whatever is below `minLength` without a word:
 * so the bytes still waiting are counted here, and the end of each write
 * (`drain`) flushes them or arms the timer again. Without that, a line logged
 * during a slow write waited for the next line, however long that took.
 */
function bufferedDestination(fd: number): DestinationStream & { flush(cb?: () => void): void } {
  const sonic = pino.destination({
    dest: fd,
    sync: false,
    minLength: LOG_BUFFER_BYTES,
    maxWrite: MAX_WRITE_BYTES,
    contentMode: 'buffer',
  });
  let waitingBytes = 0;
  let isUrgent = false;
  // Armed from the start (refresh() cannot revive a cleared timer); its
  // first run finds nothing to write.
  let isArmed = true;
  const timer = setTimeout(() => {
    isArmed = false;
    sonic.flush();
  }, FLUSH_AFTER_MS).unref();
  const arm = (): void => {
    if (isArmed) return;
    isArmed = true;
    timer.refresh();
  };
  sonic.on('write', (written: number) => {
    waitingBytes = Math.max(0, waitingBytes - written);
  });
  sonic.on('drain', () => {
    if (waitingBytes === 0) return;
    if (isUrgent) {
      isUrgent = false;
      sonic.flush();
    } else arm();
  });
  return {
    write(line: string): void {
      // As a Buffer: in its default (string) mode SonicBoom appends each line
      // to one string and measures that whole string's byte length at every
      // write, which flattens it: up to LOG_BUFFER_BYTES copied per line
      // (W4: 27.8 KB allocated per session before, 15.5 KB after, docs/PERFORMANCE.md).
      const bytes = Buffer.from(line);
      waitingBytes += bytes.length;
      sonic.write(bytes as unknown as string);
      // pino writes the level first, `{"level":40` and up is warn, error or
      // fatal: rare, and what someone may be waiting for; out at once (or at
      // the end of the write in progress).
      if (line.charCodeAt(LEVEL_DIGIT_AT) >= WARN_DIGIT) {
        isUrgent = true;
        sonic.flush();
      }
      arm();
    },
    flush(cb?: () => void): void {
      sonic.flush(cb);
    },
  };
}

/** Writes out whatever the logger still buffers (before the process exits). */
export function flushLogger(logger: Logger): void {
  try {
    logger.flush();
  } catch {
    // Nothing buffered, or stderr is gone: there is nowhere left to report to.
  }
}
