/**
 * Finds reply lines in the bytes a socket delivers, as fast as JavaScript
 * allows: it searches Buffers for LF (`indexOf`, native) and hands the
 * sink offsets into the chunk, never decoding or splitting strings. Only a
 * line cut across two reads is copied (into a small carry), because the
 * load generator reads into one reused buffer.
 */

const LF = 0x0a;

export interface LineSink {
  /**
   * One complete line, `buffer[start, end)`, its LF included. The bytes are
   * valid only during the call. `isTruncated` is true when the line was
   * longer than the scanner keeps across reads: then only its first bytes
   * are given (a reply that long is never the expected one).
   */
  onLine(buffer: Buffer, start: number, end: number, isTruncated: boolean): void;
}

export class LineScanner {
  /** How much of a line cut across reads is kept. */
  readonly #maxCarryBytes: number;
  /** Copies of the start of the current, unfinished line. */
  #carry: Buffer[] = [];
  #carriedBytes = 0;
  /** Bytes of the unfinished line seen so far, kept or not. */
  #pendingBytes = 0;

  constructor(maxCarryBytes = 64 * 1024) {
    this.#maxCarryBytes = maxCarryBytes;
  }

  /** Bytes of an unfinished line waiting for its LF. */
  get pendingBytes(): number {
    return this.#pendingBytes;
  }

  /** Forgets an unfinished line (the connection it came from is gone). */
  reset(): void {
    this.#carry = [];
    this.#carriedBytes = 0;
    this.#pendingBytes = 0;
  }

  push(chunk: Buffer, sink: LineSink): void {
    let start = 0;
    let lf = chunk.indexOf(LF);
    if (this.#pendingBytes > 0) {
      if (lf === -1) {
        this.#keep(chunk, 0, chunk.length);
        return;
      }
      this.#keep(chunk, 0, lf + 1);
      const line =
        this.#carry.length === 1 ? this.#carry[0]! : Buffer.concat(this.#carry, this.#carriedBytes);
      const isTruncated = this.#pendingBytes > this.#carriedBytes;
      this.reset();
      sink.onLine(line, 0, line.length, isTruncated);
      start = lf + 1;
      lf = chunk.indexOf(LF, start);
    }
    while (lf !== -1) {
      sink.onLine(chunk, start, lf + 1, false);
      start = lf + 1;
      lf = chunk.indexOf(LF, start);
    }
    if (start < chunk.length) this.#keep(chunk, start, chunk.length);
  }

  #keep(chunk: Buffer, from: number, to: number): void {
    this.#pendingBytes += to - from;
    const room = this.#maxCarryBytes - this.#carriedBytes;
    if (room <= 0) return;
    const count = Math.min(room, to - from);
    // A copy: the chunk's memory is reused by the next read.
    this.#carry.push(Buffer.from(chunk.subarray(from, from + count)));
    this.#carriedBytes += count;
  }
}
