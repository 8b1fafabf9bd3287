/**
 * Structured JSON logs on stderr (README, `helo server`), through pino.
 *
 * Writes are asynchronous (pino's SonicBoom) so that one summary line per
 * session does not show in the benchmarks; `flush()` runs before exit.
 * Payload contents are never passed to the logger anywhere in helo.
 */
import { pino, type Logger } from 'pino';
import type { LogLevel } from './options.js';

export type { Logger };

export function createLogger(level: LogLevel, fd = 2): Logger {
  if (level === 'silent') return pino({ level: 'silent' });
  return pino(
    { level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ dest: fd, sync: false }),
  );
}

/** Writes out whatever the logger still buffers (before the process exits). */
export function flushLogger(logger: Logger): void {
  try {
    logger.flush();
  } catch {
    // Nothing buffered, or stderr is gone: there is nowhere left to report to.
  }
}
