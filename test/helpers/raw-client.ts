/**
 * A raw TCP client for tests: writes exact bytes, collects exact bytes, and
 * reports whether (and when) the server closed.
 */
import { connect, type Socket } from 'node:net';
import { connect as connectTls, type ConnectionOptions } from 'node:tls';
import { once } from 'node:events';

export class RawClient {
  readonly socket: Socket;
  #received: Buffer[] = [];
  #receivedBytes = 0;
  #isEnded = false;
  #waiters: (() => void)[] = [];
  readonly closed: Promise<void>;

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('data', (chunk: Buffer) => {
      this.#received.push(chunk);
      this.#receivedBytes += chunk.length;
      this.#wake();
    });
    socket.on('end', () => {
      this.#isEnded = true;
      this.#wake();
    });
    socket.on('error', () => {
      this.#isEnded = true;
      this.#wake();
    });
    // Not events.once(): it rejects on an 'error' first (a reset, a server
    // killed), and a `closed` nobody awaits became an unhandled rejection.
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }

  static async open(port: number, host = '127.0.0.1'): Promise<RawClient> {
    const socket = connect({ port, host, noDelay: true });
    await once(socket, 'connect');
    return new RawClient(socket);
  }

  static async openUnix(path: string): Promise<RawClient> {
    const socket = connect({ path });
    await once(socket, 'connect');
    return new RawClient(socket);
  }

  /** A TLS connection to 127.0.0.1, once its handshake is done. */
  static async openTls(port: number, options: ConnectionOptions = {}): Promise<RawClient> {
    const socket = connectTls({ host: '127.0.0.1', port, ...options });
    // As for TCP: without it, Nagle holds small writes back until an ACK,
    // and a delayed ACK turns a split line into a 40 ms silence (§9).
    socket.setNoDelay(true);
    await once(socket, 'secureConnect');
    return new RawClient(socket);
  }

  /** True once the server has ended its side (FIN or reset). */
  get isEnded(): boolean {
    return this.#isEnded;
  }

  get text(): string {
    return Buffer.concat(this.#received).toString('latin1');
  }

  get receivedBytes(): number {
    return this.#receivedBytes;
  }

  /** Writes, unless the server has already ended the connection (then the bytes go nowhere, as on a real network). */
  write(data: Buffer | string): void {
    if (!this.socket.writable) return;
    this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Resolves when `predicate` holds, or rejects after `timeoutMs`. */
  async until(predicate: () => boolean, timeoutMs = 5_000, what = 'condition'): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      const left = deadline - Date.now();
      if (left <= 0) {
        throw new Error(
          `timed out waiting for ${what}; received so far: ${JSON.stringify(this.text)}`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 100));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  untilBytes(count: number, timeoutMs?: number): Promise<void> {
    return this.until(() => this.#receivedBytes >= count, timeoutMs, `${count} bytes`);
  }

  untilEnded(timeoutMs?: number): Promise<void> {
    return this.until(() => this.#isEnded, timeoutMs, 'the server to close');
  }

  close(): void {
    this.socket.destroy();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
