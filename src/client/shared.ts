/**
 * What the stream client (client.ts) and the UDP client (udp-client.ts) have
 * in common: option checks, how long to wait between tries while the server
 * is not up yet (`--wait`), and how durations read in messages.
 */
import { MAX_TIMER_MS } from '../defaults.js';
import { InvalidOptionError } from '../errors.js';

/** `--wait`: the first pause before trying again; each next one doubles. */
export const FIRST_RETRY_MS = 50;
/** `--wait`: the longest pause between two tries. */
export const MAX_RETRY_MS = 1000;

/** A duration option in ms that `setTimeout` can take; 0 allowed. */
export function checkDuration(name: string, value: number): void {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 0 || value > MAX_TIMER_MS) {
    throw new InvalidOptionError(
      `${name} must be a number of ms from 0 to ${MAX_TIMER_MS}, got ${value}`,
    );
  }
}

/** A port a client can connect to (1–65535: 0 means "any" only to a listener). */
export function checkPort(port: number): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidOptionError(`port must be a whole number from 1 to 65535, got ${port}`);
  }
}

/** `250 ms`, `1.5 s`: whole ms below a second, tenths of a second above. */
export function formatDuration(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${Number((ms / 1000).toFixed(1))} s`;
}

/** The end of a connect error after `--wait` (docs/ERRORS.md); empty without waiting. */
export function keptTrying(waitedMs: number): string {
  return waitedMs > 0 ? ` (kept trying for ${formatDuration(waitedMs)})` : '';
}
