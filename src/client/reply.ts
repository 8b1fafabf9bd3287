/**
 * Reply lines, as the client reads them (docs/PROTOCOL.md §3, §4).
 *
 * A reply is `<3-digit code> <TOKEN>\r\n`. The server writes replies to a
 * byte stream, so one read may hold part of a reply or many replies: the
 * parser frames bytes with the same `LineFramer` the server uses for
 * requests, then checks each line's shape. Anything else on the wire means
 * the client and the server disagree about the stream, and nothing after it
 * can be trusted.
 */
import { LineFramer, type LineSink } from '../core/framer.js';

/** One reply from the server. */
export interface Reply {
  /** The 3-digit code, e.g. `100`. */
  readonly code: number;
  /** The token after the code, as sent, e.g. `OK`. */
  readonly token: string;
  /** The whole line without its CRLF, e.g. `100 OK`. */
  readonly line: string;
}

/**
 * The longest reply line accepted, terminator excluded. Every reply in the
 * table is under 10 bytes; the margin leaves room for future tokens while a
 * server that streams garbage is caught quickly.
 */
export const MAX_REPLY_BYTES = 64;

// Exactly one space; tokens are upper-case words (`DRCV`, `BCMD`). A CR
// before the code is what is left of a reply before it ended in `\n\r`
// (LF CR, a common slip in classroom servers): the reply still counts.
const REPLY_SHAPE = /^\r?(([0-9]{3}) ([A-Z][A-Z0-9]*))$/;

/** Parses one reply line (without its terminator), or returns null if malformed. */
export function parseReply(line: string): Reply | null {
  const match = REPLY_SHAPE.exec(line);
  if (match === null) return null;
  return { code: Number(match[2]), token: match[3]!, line: match[1]! };
}

/** Receives what the parser finds, in order. */
export interface ReplySink {
  onReply(reply: Reply): void;
  /**
   * A line that is not a reply: the line as a JSON string (so that control
   * bytes stay visible), or what was wrong with it. Nothing is reported
   * after it, unless the parser was made with `{ tolerant: true }`.
   */
  onMalformed(line: string): void;
}

/** Bytes -> replies, incrementally: split points never change the result. */
export class ReplyParser {
  readonly #framer = new LineFramer(MAX_REPLY_BYTES);
  /** Go on after a malformed line (a classroom server's extra description lines). */
  readonly #isTolerant: boolean;
  #sink: ReplySink | null = null;
  #isBroken = false;

  constructor(options: { tolerant?: boolean } = {}) {
    this.#isTolerant = options.tolerant === true;
  }

  /** True once a malformed line was found; later bytes are ignored. */
  get isBroken(): boolean {
    return this.#isBroken;
  }

  /** Parses one chunk, reporting each complete reply line to `sink`. */
  push(chunk: Buffer, sink: ReplySink): void {
    if (this.#isBroken) return;
    this.#sink = sink;
    try {
      this.#framer.push(chunk, this.#lineSink);
    } finally {
      this.#sink = null;
    }
  }

  /**
   * The stream ended: an unfinished line left over is reported as malformed
   * (never dropped unseen), except a lone CR after a `\n\r` terminator.
   */
  end(sink: ReplySink): void {
    if (this.#isBroken || !this.#framer.hasPartialLine) return;
    this.#sink = sink;
    try {
      this.#framer.endPartialLine({
        onLine: (chunk, start, end) => {
          if (end > start)
            this.#malformed(
              `${JSON.stringify(chunk.toString('latin1', start, end))} (unfinished, no LF)`,
            );
          return true;
        },
        onLongLine: () => this.#malformed(`a line longer than ${MAX_REPLY_BYTES} bytes`),
      });
    } finally {
      this.#sink = null;
    }
  }

  readonly #lineSink: LineSink = {
    onLine: (chunk, start, end) => {
      // latin1 maps each byte to one char: a stray byte cannot hide in a replacement char.
      const text = chunk.toString('latin1', start, end);
      const reply = parseReply(text);
      if (reply === null) return this.#malformed(JSON.stringify(text));
      this.#sink!.onReply(reply);
      return true;
    },
    onLongLine: () => this.#malformed(`a line longer than ${MAX_REPLY_BYTES} bytes`),
  };

  #malformed(description: string): boolean {
    this.#isBroken = !this.#isTolerant;
    this.#sink!.onMalformed(description);
    return this.#isTolerant;
  }
}
