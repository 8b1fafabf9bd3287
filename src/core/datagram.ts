/**
 * The protocol over datagrams (UDP, docs/PROTOCOL.md §6): one request per
 * datagram, no state across datagrams. Pure: bytes in, what to do out (a
 * reply, a payload to store, or silence); no socket, timer or clock. The
 * UDP endpoint (src/server/transports/udp.ts) does the I/O around it.
 *
 * A datagram is read exactly as the same bytes would be read on a TCP
 * connection that has just opened, with these rules on top:
 *
 * - One final LF or CRLF is optional and removed; a lone final CR is a byte
 *   of the request (as on TCP, where only the CR before an LF goes).
 * - `DATA`, LF, payload is one request; an LF inside a datagram otherwise
 *   makes it more than one request, answered `400 BCMD` (nothing stored).
 * - The line limit is the TCP one, per line: `DATA <payload>` may be
 *   `maxLineBytes` long in all, and with `DATA` LF payload the payload line
 *   alone may be `maxLineBytes` long. Over the limit: `401 LONG`.
 * - An HTTP-looking command line anywhere in the datagram: no reply (§8).
 */
import { LineFramer, type LineSink } from './framer.js';
import { Replies } from './replies.js';
import {
  Session,
  type RejectAction,
  type ReplyAction,
  type SessionAction,
  type StoreAction,
} from './session.js';

/** What one datagram asks for: a reply, a payload to store, or silence (§8). */
export type DatagramRequest = ReplyAction | StoreAction | RejectAction;

const LF = 0x0a;
const CR = 0x0d;
const CRLF = Buffer.from('\r\n');
const REJECT: RejectAction = Object.freeze({ type: 'reject' });
const REPLY_BCMD: ReplyAction = Object.freeze({ type: 'reply', reply: Replies.BCMD });
const REPLY_LONG: ReplyAction = Object.freeze({ type: 'reply', reply: Replies.LONG });

/**
 * Reads one datagram as docs/PROTOCOL.md §6 says (rules at the top of this file).
 * Pure: no socket, no clock. Never throws for any bytes.
 */
export function interpretDatagram(datagram: Buffer, maxLineBytes: number): DatagramRequest {
  let end = datagram.length;
  if (end > 0 && datagram[end - 1] === LF) {
    end--;
    if (end > 0 && datagram[end - 1] === CR) end--;
  }
  // The rest is framed as TCP would frame it followed by CRLF: the framer
  // then removes exactly that CR, so a final CR of the request itself stays.
  const reader = new DatagramReader();
  new LineFramer(maxLineBytes).push(Buffer.concat([datagram.subarray(0, end), CRLF]), reader);
  if (reader.isRejected) return REJECT;
  if (reader.requests === 1 && reader.session.state === 'command') return reader.first!;
  // Not exactly one request: several, or a bare DATA with no payload line
  // (no state crosses datagrams, so none can follow).
  return reader.hasLongLine ? REPLY_LONG : REPLY_BCMD;
}

/** The lines of one datagram through a fresh Session: how many requests, and the first. */
class DatagramReader implements LineSink {
  readonly session = new Session();
  requests = 0;
  first: ReplyAction | StoreAction | null = null;
  isRejected = false;
  hasLongLine = false;

  onLine(chunk: Buffer, start: number, end: number): boolean {
    return this.#take(this.session.onLine(chunk, start, end));
  }

  onLongLine(): boolean {
    this.hasLongLine = true;
    return this.#take(this.session.onLongLine());
  }

  #take(action: SessionAction): boolean {
    if (action.type === 'reject') {
      this.isRejected = true;
      return false;
    }
    if (action.type === 'await-payload') return true;
    this.requests++;
    this.first ??= action;
    return true;
  }
}
