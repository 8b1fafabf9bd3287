/**
 * What a reply should be, and how a received one is judged: pure, on
 * offsets into a Buffer, without decoding. A reply is one or more lines;
 * the expected bytes, cut after each LF, say how many lines it has.
 */
import { InvalidOptionError } from '../errors.js';
import { formatEscapes } from './escapes.js';

/** The expected reply of one request. */
export interface ReplyExpectation {
  /** How many lines the reply has. */
  readonly lineCount: number;
  /** The exact bytes of each line, LF included; null accepts any lines. */
  readonly lines: readonly Buffer[] | null;
}

/** The index in a code table that counts replies without a 3-digit code. */
export const OTHER_CODE = 1000;

/** The slots of a code table: 000-999, then OTHER_CODE. */
export const CODE_SLOTS = OTHER_CODE + 1;

const LF = 0x0a;
const ZERO = 0x30;

/** A reply of exactly these bytes, which must end with LF. */
export function exactReply(bytes: Buffer): ReplyExpectation {
  if (bytes.length === 0 || bytes[bytes.length - 1] !== LF) {
    throw new InvalidOptionError(
      `an expected reply must end with a line feed (\\n), got '${formatEscapes(bytes)}'`,
    );
  }
  const lines: Buffer[] = [];
  let start = 0;
  for (let lf = bytes.indexOf(LF); lf !== -1; lf = bytes.indexOf(LF, start)) {
    lines.push(bytes.subarray(start, lf + 1));
    start = lf + 1;
  }
  return { lineCount: lines.length, lines };
}

/** A reply of `lineCount` lines, whatever they say. */
export function anyReply(lineCount = 1): ReplyExpectation {
  return { lineCount, lines: null };
}

/** True when `buffer[start, end)` is exactly `expected`. */
export function lineEquals(expected: Buffer, buffer: Buffer, start: number, end: number): boolean {
  const length = expected.length;
  if (end - start !== length) return false;
  // Reply lines are short: a loop beats a native compare call here.
  for (let i = 0; i < length; i++) {
    if (buffer[start + i] !== expected[i]) return false;
  }
  return true;
}

/**
 * The reply code of a line (its first three bytes, when they are digits:
 * `100 OK` is 100), or OTHER_CODE.
 */
export function replyCodeOf(buffer: Buffer, start: number, end: number): number {
  if (end - start < 3) return OTHER_CODE;
  const a = buffer[start]! - ZERO;
  const b = buffer[start + 1]! - ZERO;
  const c = buffer[start + 2]! - ZERO;
  if (a < 0 || a > 9 || b < 0 || b > 9 || c < 0 || c > 9) return OTHER_CODE;
  return a * 100 + b * 10 + c;
}
