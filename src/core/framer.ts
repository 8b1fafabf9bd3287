/**
 * Bytes -> lines (docs/PROTOCOL.md §2, §9).
 *
 * TCP is a byte stream: a line may arrive split across many reads and many
 * lines may arrive in one read. The framer turns whatever arrives into
 * complete lines, with no copy in the common case: a line that lies inside
 * one chunk is handed on as (chunk, start, end). Only a line split across
 * reads is copied, and never more than the line limit of it is kept: an
 * overlong line is reported the moment it passes the limit and the rest of
 * it is skipped up to its LF without being buffered.
 */

const LF = 0x0a;
const CR = 0x0d;

/** Receives what the framer finds, in order. */
export interface LineSink {
  /**
   * A complete line: `chunk[start, end)`, its LF and a CR before it removed.
   * The bytes are only valid during the call. Return false to stop framing
   * the rest of the chunk (the connection is about to close).
   */
  onLine(chunk: Buffer, start: number, end: number): boolean;
  /** A line passed the limit; its remaining bytes will be discarded. */
  onLongLine(): boolean;
}

export class LineFramer {
  readonly #maxLineBytes: number;
  /** Bytes of a line begun in an earlier chunk (copies, at most limit + 1). */
  #partial: Buffer[] = [];
  #partialBytes = 0;
  /** Inside an overlong line: drop bytes up to the next LF. */
  #isDiscarding = false;
  /** §9: a line was ended by silence; a bare terminator next is not a line. */
  #isAfterUnterminated = false;

  /** @param maxLineBytes longest line accepted, without its terminator. */
  constructor(maxLineBytes: number) {
    this.#maxLineBytes = maxLineBytes;
  }

  /** True while part of a line has arrived but not its LF. */
  get hasPartialLine(): boolean {
    return this.#partialBytes > 0 || this.#isDiscarding;
  }

  /** Bytes of an unfinished line held here: never more than the limit + 1. */
  get bufferedBytes(): number {
    return this.#partialBytes;
  }

  /** Frames one chunk; returns false if the sink asked to stop. */
  push(chunk: Buffer, sink: LineSink): boolean {
    const length = chunk.length;
    let start = 0;
    while (start < length) {
      const lf = chunk.indexOf(LF, start);
      if (this.#isDiscarding) {
        if (lf === -1) return true;
        this.#isDiscarding = false;
        start = lf + 1;
        continue;
      }
      if (lf === -1) return this.#keepPartial(chunk, start, length, sink);
      const keepGoing =
        this.#partialBytes === 0
          ? this.#emit(chunk, start, lf, sink)
          : this.#emitJoined(chunk, start, lf, sink);
      if (!keepGoing) return false;
      start = lf + 1;
    }
    return true;
  }

  /**
   * §9: the client went silent mid-line. Treat the partial line as if its LF
   * had arrived, and ignore an empty remainder that may follow.
   */
  endPartialLine(sink: LineSink): boolean {
    if (this.#isDiscarding) {
      // The overlong line was already answered (401 LONG); silence ends it.
      this.#isDiscarding = false;
      this.#isAfterUnterminated = true;
      return true;
    }
    if (this.#partialBytes === 0) return true;
    const line = this.#takePartial();
    const keepGoing = this.#emit(line, 0, line.length, sink);
    this.#isAfterUnterminated = true;
    return keepGoing;
  }

  /**
   * §11: telnet's interrupt (Ctrl-C) throws away the line typed so far; the
   * bytes that follow start a new line.
   */
  discardPartialLine(): void {
    this.#dropPartial();
    this.#isDiscarding = false;
    this.#isAfterUnterminated = false;
  }

  #emit(chunk: Buffer, start: number, lf: number, sink: LineSink): boolean {
    const end = lf > start && chunk[lf - 1] === CR ? lf - 1 : lf;
    if (this.#isAfterUnterminated) {
      this.#isAfterUnterminated = false;
      if (end === start) return true;
    }
    if (end - start > this.#maxLineBytes) return sink.onLongLine();
    return sink.onLine(chunk, start, end);
  }

  #emitJoined(chunk: Buffer, start: number, lf: number, sink: LineSink): boolean {
    if (this.#partialBytes + (lf - start) > this.#maxLineBytes + 1) {
      // Certainly too long even if its last byte is the CR of a CRLF.
      this.#dropPartial();
      this.#isAfterUnterminated = false;
      return sink.onLongLine();
    }
    this.#partial.push(chunk.subarray(start, lf));
    const line = this.#takePartial();
    return this.#emit(line, 0, line.length, sink);
  }

  #keepPartial(chunk: Buffer, start: number, end: number, sink: LineSink): boolean {
    const total = this.#partialBytes + (end - start);
    // limit + 1 bytes may still be a full-length line whose CR came early.
    const lastIsCr = chunk[end - 1] === CR;
    if (total > this.#maxLineBytes + 1 || (total === this.#maxLineBytes + 1 && !lastIsCr)) {
      this.#dropPartial();
      this.#isDiscarding = true;
      this.#isAfterUnterminated = false;
      return sink.onLongLine();
    }
    // Copy: a slice would pin the whole chunk in memory while the client dawdles.
    this.#partial.push(Buffer.from(chunk.subarray(start, end)));
    this.#partialBytes = total;
    return true;
  }

  #takePartial(): Buffer {
    const line = this.#partial.length === 1 ? this.#partial[0]! : Buffer.concat(this.#partial);
    this.#partial = [];
    this.#partialBytes = 0;
    return line;
  }

  #dropPartial(): void {
    this.#partial = [];
    this.#partialBytes = 0;
  }
}
