/**
 * One raw connection, as the grader sees it: bytes out, bytes in, and when
 * the server closes. No client library on purpose: the grader must see what
 * the server really sends (LF or CRLF, extra lines, early replies) and must
 * never trust it to follow the protocol. Every wait is bounded.
 */
import net from 'node:net';
import { ConnectError } from '../errors.js';

/** Where the server under test listens. */
export type GradeTarget =
  { readonly host: string; readonly port: number } | { readonly path: string };

/** A received line with its terminator (`\n` or `\r\n`, or none at the end). */
export interface RawLine {
  /** The bytes before the LF, latin1, a CR before the LF removed. */
  readonly text: string;
  /** Exactly what arrived, terminator included. */
  readonly raw: string;
}

export function describeTarget(target: GradeTarget): string {
  if ('path' in target) return `unix:${target.path}`;
  return target.host.includes(':')
    ? `[${target.host}]:${target.port}`
    : `${target.host}:${target.port}`;
}

/** Opens one connection within `timeoutMs`. */
export function openWire(target: GradeTarget, timeoutMs: number): Promise<Wire> {
  return new Promise((resolve, reject) => {
    const socket = 'path' in target ? net.connect(target.path) : net.connect(target);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new ConnectError(
          `no answer from ${describeTarget(target)} within ${timeoutMs} ms — is the server running?`,
        ),
      );
    }, timeoutMs);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.removeAllListeners('error');
      resolve(new Wire(socket));
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      socket.destroy();
      const where = describeTarget(target);
      reject(
        new ConnectError(
          error.code === 'ECONNREFUSED' || error.code === 'ENOENT'
            ? `nothing answers at ${where} — is the server running?`
            : `cannot connect to ${where}: ${error.message}`,
          { cause: error },
        ),
      );
    });
  });
}

export class Wire {
  readonly #socket: net.Socket;
  #received = Buffer.alloc(0);
  /** Bytes of #received already handed out as lines. */
  #consumed = 0;
  #isClosed = false;
  #wake: (() => void) | null = null;

  constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      this.#received = Buffer.concat([this.#received, chunk]);
      this.#notify();
    });
    // A reset is one way for a server to close: the check decides what it means.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      this.#isClosed = true;
      this.#notify();
    });
  }

  get isClosed(): boolean {
    return this.#isClosed;
  }

  /** Everything received and not yet read as a line. */
  get unread(): string {
    return this.#received.toString('latin1', this.#consumed);
  }

  /** Writes one send (one TCP write: what a classroom client's `send()` does). */
  async send(bytes: string | Buffer): Promise<void> {
    if (this.#socket.destroyed) return;
    await new Promise<void>((resolve) => {
      this.#socket.write(bytes, () => resolve());
    });
  }

  /** Half-closes: the server reads end of stream (FIN) after what was sent. */
  finish(): void {
    this.#socket.end();
  }

  /** Resets the connection at once (a client that vanishes). */
  reset(): void {
    this.#socket.resetAndDestroy();
  }

  close(): void {
    this.#socket.destroy();
  }

  /**
   * The next line, or null if none is complete before `deadline`
   * (performance.now() time) or the server closed without finishing one.
   */
  async line(deadline: number): Promise<RawLine | null> {
    for (;;) {
      const lf = this.#received.indexOf(0x0a, this.#consumed);
      if (lf !== -1) {
        const raw = this.#received.toString('latin1', this.#consumed, lf + 1);
        this.#consumed = lf + 1;
        return { raw, text: raw.endsWith('\r\n') ? raw.slice(0, -2) : raw.slice(0, -1) };
      }
      if (this.#isClosed || !(await this.#waitUntil(deadline))) return null;
    }
  }

  /** True if the server closes before `deadline`. */
  async closed(deadline: number): Promise<boolean> {
    while (!this.#isClosed) {
      if (!(await this.#waitUntil(deadline))) return false;
    }
    return true;
  }

  /** True if anything arrives (or the server closes) before `deadline`. */
  async anything(deadline: number): Promise<boolean> {
    while (this.#received.length === this.#consumed && !this.#isClosed) {
      if (!(await this.#waitUntil(deadline))) return false;
    }
    return true;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }

  /** Waits for news; false once the deadline passed. */
  #waitUntil(deadline: number): Promise<boolean> {
    const left = deadline - performance.now();
    if (left <= 0) return Promise.resolve(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#wake = null;
        resolve(false);
      }, left);
      this.#wake = () => {
        clearTimeout(timer);
        resolve(true);
      };
    });
  }
}
