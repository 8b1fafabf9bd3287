/**
 * The protocol over a byte stream (TCP, Unix, TLS): framer + session.
 *
 * Every stream transport feeds the bytes it reads into `push()` and gets
 * actions back in request order. Message transports (WebSocket) already
 * have lines and talk to a `Session` directly.
 */
import { LineFramer, type LineSink } from './framer.js';
import { Session, type SessionAction } from './session.js';

export interface ActionSink {
  /** Called once per request, in order. */
  onAction(action: SessionAction): void;
}

export class StreamProtocol implements LineSink {
  readonly session = new Session();
  readonly #framer: LineFramer;
  #sink: ActionSink | null = null;
  #isEnded = false;
  #lines = 0;
  /** The line being delivered was ended by silence or EOF, not by its LF (§9). */
  #isUnterminated = false;

  /** @param maxLineBytes longest line accepted, without its terminator (§2). */
  constructor(maxLineBytes: number) {
    this.#framer = new LineFramer(maxLineBytes);
  }

  /** True once QUIT or a §8 rejection ended the session: ignore further bytes. */
  get isEnded(): boolean {
    return this.#isEnded;
  }

  /** Lines received so far, overlong ones included. */
  get lines(): number {
    return this.#lines;
  }

  /** Part of a line is waiting for its LF (§9 arms its timer on this). */
  get hasPartialLine(): boolean {
    return this.#framer.hasPartialLine;
  }

  /** Bytes of the partial line held (0 while an overlong one is being skipped). */
  get partialLineBytes(): number {
    return this.#framer.bufferedBytes;
  }

  /** Frames `chunk`, reporting one action per complete line. */
  push(chunk: Buffer, sink: ActionSink): void {
    if (this.#isEnded) return;
    this.#sink = sink;
    this.#framer.push(chunk, this);
    this.#sink = null;
  }

  /** §9: process the partial line as if its LF had arrived. */
  endPartialLine(sink: ActionSink): void {
    if (this.#isEnded) return;
    this.#sink = sink;
    this.#isUnterminated = true;
    this.#framer.endPartialLine(this);
    this.#isUnterminated = false;
    this.#sink = null;
  }

  /** §11: telnet's interrupt discards the partial line received so far. */
  discardPartialLine(): void {
    this.#framer.discardPartialLine();
  }

  onLine(chunk: Buffer, start: number, end: number): boolean {
    return this.#deliver(this.session.onLine(chunk, start, end, this.#isUnterminated));
  }

  onLongLine(): boolean {
    return this.#deliver(this.session.onLongLine());
  }

  #deliver(action: SessionAction): boolean {
    this.#lines++;
    if (action.type === 'reject' || (action.type === 'reply' && action.reply.closes)) {
      this.#isEnded = true;
    }
    this.#sink!.onAction(action);
    return !this.#isEnded;
  }
}
