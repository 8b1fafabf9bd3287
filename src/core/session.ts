/**
 * One line -> what to do: the HELO/DATA/QUIT state machine (docs/PROTOCOL.md §3).
 *
 * ```
 *              HELO [name] -> 100 OK     anything else -> 400 BCMD
 *              DATA <payload> -> store   overlong line -> 401 LONG
 *                  +-----+
 *                  v     |
 *   start --> [ COMMAND ]-+-- QUIT -> 200 BYE, close
 *               ^     |   \-- HTTP-looking line (§8) -> close, no reply
 *               |     | bare DATA (no reply yet)
 *   payload line|     v
 *   -> store    [ PAYLOAD ]   (the next line is the payload, whatever it says;
 *   long -> 401 LONG          an overlong one is answered 401 LONG instead)
 * ```
 *
 * The session is pure: it reads bytes and returns an action. Storing the
 * payload, sending the reply and closing belong to whoever drives it.
 */
import { looksLikeHttp } from './cross-protocol.js';
import { Replies, type ReplyInfo } from './replies.js';

/** Send `reply` (and close afterwards when `reply.closes`). */
export interface ReplyAction {
  readonly type: 'reply';
  readonly reply: ReplyInfo;
}
/** Store `payload`; answer 300 DRCV once it is stored, 500 FAIL if not. */
export interface StoreAction {
  readonly type: 'store';
  readonly payload: Buffer;
}
/** A bare DATA: nothing to send until its payload line arrives. */
export interface AwaitPayloadAction {
  readonly type: 'await-payload';
}
/** §8: close at once without a reply; process nothing more. */
export interface RejectAction {
  readonly type: 'reject';
}

export type SessionAction = ReplyAction | StoreAction | AwaitPayloadAction | RejectAction;

// Shared, frozen instances: the hot path allocates nothing for these.
const REPLY_OK: ReplyAction = Object.freeze({ type: 'reply', reply: Replies.OK });
const REPLY_BYE: ReplyAction = Object.freeze({ type: 'reply', reply: Replies.BYE });
const REPLY_BCMD: ReplyAction = Object.freeze({ type: 'reply', reply: Replies.BCMD });
const REPLY_LONG: ReplyAction = Object.freeze({ type: 'reply', reply: Replies.LONG });
const AWAIT_PAYLOAD: AwaitPayloadAction = Object.freeze({ type: 'await-payload' });
const REJECT: RejectAction = Object.freeze({ type: 'reject' });

const SPACE = 0x20;
const TAB = 0x09;
const LOWER = 0x20;
// Command words as big-endian 32-bit keys of their lower-case bytes.
const KEY_HELO = 0x68656c6f;
const KEY_DATA = 0x64617461;
const KEY_QUIT = 0x71756974;

export type SessionState = 'command' | 'payload';

export class Session {
  #state: SessionState = 'command';
  #name: string | null = null;

  /** `command`, or `payload` right after a bare DATA. */
  get state(): SessionState {
    return this.#state;
  }

  /** The last name given with HELO, or null. */
  get name(): string | null {
    return this.#name;
  }

  /**
   * Handles one complete line, `line[start, end)` without its terminator.
   * `isUnterminated`: §9 ended it (silence or EOF), not an LF.
   */
  onLine(line: Buffer, start: number, end: number, isUnterminated = false): SessionAction {
    if (this.#state === 'payload') {
      // docs/PROTOCOL.md §3: after a bare DATA the next line is payload, whatever it says.
      this.#state = 'command';
      return { type: 'store', payload: Buffer.from(line.subarray(start, end)) };
    }
    let at = start;
    let byte = line[at];
    while (at < end && (byte === SPACE || byte === TAB)) byte = line[++at];
    const wordStart = at;
    while (at < end && byte !== SPACE && byte !== TAB) byte = line[++at];
    const wordEnd = at;

    if (wordEnd - wordStart === 4) {
      const key =
        (((line[wordStart]! | LOWER) << 24) |
          ((line[wordStart + 1]! | LOWER) << 16) |
          ((line[wordStart + 2]! | LOWER) << 8) |
          (line[wordStart + 3]! | LOWER)) >>>
        0;
      if (key === KEY_HELO) return this.#helo(line, wordEnd, end);
      if (key === KEY_DATA) return this.#data(line, wordEnd, end, isUnterminated);
      if (key === KEY_QUIT && isBlankRun(line, wordEnd, end)) return REPLY_BYE;
    }
    return looksLikeHttp(line, start, end) ? REJECT : REPLY_BCMD;
  }

  /** The framer found a line over the limit (§2, §4). */
  onLongLine(): SessionAction {
    // An overlong payload line is the payload that was not received.
    this.#state = 'command';
    return REPLY_LONG;
  }

  #helo(line: Buffer, wordEnd: number, end: number): SessionAction {
    let nameStart = wordEnd;
    while (nameStart < end && isBlankByte(line[nameStart])) nameStart++;
    let nameEnd = end;
    while (nameEnd > nameStart && isBlankByte(line[nameEnd - 1])) nameEnd--;
    // A bare HELO keeps the current name; HELO <name> relabels (§3).
    if (nameEnd > nameStart) this.#name = line.toString('utf8', nameStart, nameEnd);
    return REPLY_OK;
  }

  #data(line: Buffer, wordEnd: number, end: number, isUnterminated: boolean): SessionAction {
    // §9: a classroom client sends `"DATA " + payload` with no newline; with
    // an empty payload that is `DATA ` alone, which must not wait for a
    // payload line that will never come. Ended by LF it stays a bare DATA.
    if (isUnterminated && end - wordEnd === 1) return { type: 'store', payload: Buffer.alloc(0) };
    if (isBlankRun(line, wordEnd, end)) {
      this.#state = 'payload';
      return AWAIT_PAYLOAD;
    }
    // §3: the payload is everything after the single separator, kept as sent.
    return { type: 'store', payload: Buffer.from(line.subarray(wordEnd + 1, end)) };
  }
}

function isBlankByte(byte: number | undefined): boolean {
  return byte === SPACE || byte === TAB;
}

function isBlankRun(line: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (!isBlankByte(line[i])) return false;
  return true;
}
