/**
 * A raw protocol client for the load scripts (bench/slowloris.ts,
 * bench/soak.ts): sends exact bytes and checks that the replies are exactly
 * the expected ones, in order, as they arrive. Nothing is parsed ahead of
 * the check: a reply the protocol did not call for is caught at the byte
 * where it differs.
 */
import { connect, type Socket } from 'node:net';

/** A reply that differs from the one expected, or a wait that ran out. */
export class ReplyMismatch extends Error {
  constructor(
    readonly expected: string,
    readonly received: string,
    what: string,
  ) {
    super(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(received)}`);
  }
}

/** The peer closed or failed while replies were still expected. */
export class ConnectionLost extends Error {}

export class LineClient {
  readonly socket: Socket;
  /** Everything received and not yet checked against an expectation. */
  #unchecked = '';
  #isEnded = false;
  #error: Error | null = null;
  #wake: (() => void) | null = null;
  readonly closed: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => {
      this.#unchecked += text;
      this.#notify();
    });
    socket.on('end', () => {
      this.#isEnded = true;
      this.#notify();
    });
    socket.on('error', (error) => {
      this.#error ??= error;
      this.#isEnded = true;
      this.#notify();
    });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  /** Connects (rejects on failure or after `timeoutMs`). */
  static open(port: number, host = '127.0.0.1', timeoutMs = 10_000): Promise<LineClient> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`no connection within ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(error);
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new LineClient(socket));
      });
    });
  }

  /** The socket error that ended the connection, if one did. */
  get error(): Error | null {
    return this.#error;
  }

  get isEnded(): boolean {
    return this.#isEnded;
  }

  send(data: string | Buffer): void {
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Waits until `expected` has arrived in full; throws if something else did. */
  async expect(expected: string, timeoutMs: number, what = 'reply'): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    // Only what arrived since the last look is compared: a long run of
    // pipelined replies is checked once, not once per read.
    let matched = 0;
    for (;;) {
      const have = this.#unchecked;
      const length = Math.min(have.length, expected.length);
      if (have.slice(matched, length) !== expected.slice(matched, length)) {
        const from = Math.max(0, matched - 20);
        throw new ReplyMismatch(
          expected.slice(from, length + 20),
          have.slice(from, length + 20),
          `${what} (from byte ${from})`,
        );
      }
      matched = length;
      if (have.length >= expected.length) {
        this.#unchecked = have.slice(expected.length);
        return;
      }
      if (this.#isEnded) {
        throw new ConnectionLost(
          `${what}: connection ended after ${JSON.stringify(have)} of ${JSON.stringify(expected)}` +
            (this.#error ? ` (${this.#error.message})` : ''),
        );
      }
      const left = deadline - performance.now();
      if (left <= 0) throw new ReplyMismatch(expected, have, `${what}: timed out`);
      await this.#waitForNews(left);
    }
  }

  /** Waits for the server to close, with nothing more received than was expected. */
  async expectEnd(timeoutMs: number, what = 'close'): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!this.#isEnded) {
      if (this.#unchecked.length > 0) {
        throw new ReplyMismatch('(close)', this.#unchecked, `${what}: more replies than expected`);
      }
      const left = deadline - performance.now();
      if (left <= 0) throw new ReplyMismatch('(close)', this.#unchecked, `${what}: timed out`);
      await this.#waitForNews(left);
    }
    if (this.#unchecked.length > 0) {
      throw new ReplyMismatch('(close)', this.#unchecked, `${what}: more replies than expected`);
    }
    if (this.#error) throw new ConnectionLost(`${what}: ${this.#error.message}`);
  }

  /** Our side is done: FIN, then the socket goes once the server closes too. */
  end(): void {
    this.socket.end();
  }

  destroy(): void {
    this.socket.destroy();
  }

  /** Drops the connection with a TCP reset (RST), as a crashing client would. */
  reset(): void {
    this.socket.resetAndDestroy();
  }

  #waitForNews(timeoutMs: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = null;
        resolve();
      }, timeoutMs);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}
