/**
 * `helo server --stdio` (inetd, systemd `Accept=yes`; docs/TRANSPORTS.md,
 * "Socket activation and inetd mode"): one session whose bytes come on stdin
 * and whose replies go to stdout. This Duplex joins the two into the
 * stream a `Connection` serves; logs stay on stderr.
 */
import { Duplex } from 'node:stream';

interface Peer {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
}

export class StdioStream extends Duplex {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number;
  readonly #input: NodeJS.ReadableStream & Peer;
  readonly #output: NodeJS.WritableStream;

  constructor(
    input: NodeJS.ReadableStream & Peer = process.stdin,
    output: NodeJS.WritableStream = process.stdout,
  ) {
    // A client's end of input must not stop the replies it is owed (§2).
    super({ allowHalfOpen: true });
    this.#input = input;
    this.#output = output;
    // Under inetd stdin is the client's socket: its address names the peer in logs and records.
    this.remoteAddress = input.remoteAddress ?? 'stdio';
    this.remotePort = input.remotePort ?? 0;
    input.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) input.pause();
    });
    input.on('end', () => this.push(null));
    input.on('error', (error: Error) => this.destroy(error));
    output.on('error', (error: Error) => this.destroy(error));
    input.pause();
  }

  override _read(): void {
    this.#input.resume();
  }

  override _write(
    chunk: Buffer,
    _encoding: BufferEncoding,
    done: (error?: Error | null) => void,
  ): void {
    this.#output.write(chunk, done);
  }

  override _final(done: (error?: Error | null) => void): void {
    this.#output.end(done);
  }

  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    // Nothing more will be read: stdin must not keep the process alive.
    this.#input.pause();
    (this.#input as Partial<Duplex>).destroy?.();
    done(error);
  }
}
