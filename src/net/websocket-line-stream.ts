/**
 * A WebSocket seen as a byte stream of lines (docs/PROTOCOL.md §7), so that the
 * very same `Connection` (and, on the client side, `HeloClient`) serves it
 * as it serves a TCP socket: one text message in becomes one line (its LF
 * added), and every line written becomes one text message out.
 *
 * What §7 forbids is refused here, before the protocol sees it: a binary
 * message, or a text message with an LF inside, closes the WebSocket.
 *
 * Backpressure works as on a socket, in both directions. Reading: when the
 * reader stops taking lines (`Connection` paused, or a sequential session
 * still waiting for its turn), `push()` returns false and the WebSocket is
 * paused (`ws.pause()` stops reading its TCP socket); `_read()` resumes it.
 * Writing: a write completes only once ws has handed its last message to
 * the TCP socket, so `writableLength` counts the replies the kernel has not
 * taken yet, which is what `Connection` compares with its high-water mark.
 */
import { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';

const LF = 0x0a;

/** WebSocket close codes (RFC 6455 §7.4.1). */
const CLOSE_NORMAL = 1000;
const CLOSE_PROTOCOL_ERROR = 1002;
const CLOSE_UNSUPPORTED_DATA = 1003;

export class WebSocketLineStream extends Duplex {
  readonly #ws: WebSocket;
  /** The peer's address, as a socket would give it. */
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  /** Written bytes after the last LF, waiting for the rest of their line. */
  #partial: Buffer = Buffer.alloc(0);
  /** Why the stream closed the WebSocket itself, for logs; null otherwise. */
  protocolError: string | null = null;

  constructor(
    ws: WebSocket,
    remote: { address?: string | undefined; port?: number | undefined } = {},
  ) {
    super({ allowHalfOpen: true });
    this.#ws = ws;
    this.remoteAddress = remote.address;
    this.remotePort = remote.port;
    ws.on('message', this.#wsOnMessage);
    ws.on('close', () => {
      this.push(null);
      // Nothing more can be written either: finish our side quietly.
      if (!this.writableEnded) this.end();
    });
    ws.on('error', (error) => this.destroy(error));
  }

  /** Sockets have it; messages are sent whole anyway. */
  setNoDelay(): this {
    return this;
  }

  readonly #wsOnMessage = (data: RawData, isBinary: boolean): void => {
    if (isBinary) {
      this.#refuse(CLOSE_UNSUPPORTED_DATA, 'binary messages are not part of the protocol');
      return;
    }
    let line = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    // A final LF or CRLF is optional and removed (§7). Only the LF is cut
    // here: the line goes on with an LF of its own, and the framer removes
    // the one CR before it, exactly as on TCP (so `a\r\r\n` keeps one CR).
    if (line.length > 0 && line[line.length - 1] === LF) line = line.subarray(0, line.length - 1);
    if (line.includes(LF)) {
      this.#refuse(CLOSE_PROTOCOL_ERROR, 'one message holds one line');
      return;
    }
    // Messages of the chunk ws is parsing still come after a pause: a few
    // kilobytes at most, kept in this stream's buffer until they are read.
    if (!this.push(Buffer.concat([line, Buffer.of(LF)]))) this.#ws.pause();
  };

  #refuse(code: number, reason: string): void {
    this.protocolError = reason;
    this.#ws.close(code, reason);
  }

  override _read(): void {
    if (this.#ws.isPaused) this.#ws.resume();
  }

  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    callback: (error?: Error | null) => void,
  ): void {
    const data = this.#partial.length > 0 ? Buffer.concat([this.#partial, chunk]) : chunk;
    let start = 0;
    let lastSend: Promise<void> | null = null;
    for (let lf = data.indexOf(LF); lf !== -1; lf = data.indexOf(LF, start)) {
      const line = data.subarray(start, lf + 1);
      lastSend = new Promise((resolve, reject) =>
        this.#ws.send(line, { binary: false }, (error) => (error ? reject(error) : resolve())),
      );
      start = lf + 1;
    }
    this.#partial = Buffer.from(data.subarray(start));
    // The callback waits for the last message to reach the socket: that is
    // what makes `writableLength` mean "not yet sent", as on a TCP socket.
    if (lastSend === null) callback();
    else lastSend.then(() => callback(), callback);
  }

  override _final(callback: (error?: Error | null) => void): void {
    if (this.#ws.readyState === this.#ws.OPEN) this.#ws.close(CLOSE_NORMAL);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.#ws.readyState !== this.#ws.CLOSED) this.#ws.terminate();
    callback(error);
  }
}
