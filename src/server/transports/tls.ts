/**
 * TLS (`--tls-port`): the same byte stream as TCP, encrypted, optionally
 * with client certificates (mutual TLS).
 *
 * The listener is a plain TCP listener; the TLS handshake starts only after
 * the connection limits have admitted the connection, so a flood of
 * handshakes cannot be used to get around `--max-connections` (a handshake
 * costs far more CPU than a HELO). A handshake that does not finish within
 * `handshakeTimeoutMs` is cut off. With `--tls-require-client-cert`, a
 * client without a certificate signed by `--tls-ca` fails the handshake, so
 * no command of it is ever read.
 *
 * Certificates are files, read at start and again on `reload()` (SIGHUP):
 * renewed certificates take effect for new connections without a restart.
 */
import { readFileSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import {
  createServer as createTlsServer,
  type Server as TlsServer,
  type TLSSocket,
} from 'node:tls';
import { truncateUtf8 } from '../../core/truncate-utf8.js';
import { InvalidOptionError } from '../../errors.js';
import type { StreamSocket } from '../connection.js';
import { boundHost, boundPort, listenTcp, tcpUrl } from './tcp.js';
import { closeListener, type Arrive, type StreamTransport } from './transport.js';

/**
 * The most of a client certificate's subject stored with each payload, in
 * UTF-8 bytes, `…` included: a certificate can carry a subject of tens of KiB
 * (docs/SECURITY.md), and it is stored again with every payload.
 */
export const MAX_CLIENT_CERT_SUBJECT_BYTES = 1024;

export interface TlsFiles {
  readonly certPath: string;
  readonly keyPath: string;
  /** CA bundle that client certificates must chain to; null: no client certificates. */
  readonly caPath: string | null;
}

export interface TlsHandshakeOptions {
  readonly requireClientCert: boolean;
  readonly handshakeTimeoutMs: number;
}

/** Reads the files; the message names the file that failed. */
export function readTlsFiles(files: TlsFiles): { cert: Buffer; key: Buffer; ca?: Buffer } {
  const read = (what: string, path: string): Buffer => {
    try {
      return readFileSync(path);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? String(error);
      throw new InvalidOptionError(`cannot read the TLS ${what} ${path} (${reason})`);
    }
  };
  const material = { cert: read('certificate', files.certPath), key: read('key', files.keyPath) };
  if (files.caPath === null) return material;
  return { ...material, ca: read('CA', files.caPath) };
}

/** The certificate's subject on one line, e.g. `CN=alice, O=lab`, cut to 1 KiB. */
function subjectOf(socket: TLSSocket): string | null {
  if (!socket.authorized) return null;
  const subject = socket.getPeerX509Certificate()?.subject;
  if (subject === undefined) return null;
  return truncateUtf8(subject.split('\n').join(', '), MAX_CLIENT_CERT_SUBJECT_BYTES);
}

/**
 * The handshake engine: a `tls.Server` that never listens. Admitted TCP
 * sockets are handed to it with `handshake()`; it emits each one that
 * completes the handshake, with the client certificate's subject.
 */
export class TlsHandshaker {
  readonly #server: TlsServer;
  readonly #files: TlsFiles;
  /** Raw sockets in their handshake, by peer: the TLS socket made from one has the same peer. */
  readonly #raw = new Map<string, Handshake>();

  constructor(
    files: TlsFiles,
    options: TlsHandshakeOptions,
    onFailure: (raw: Socket, error: Error) => void,
  ) {
    this.#files = files;
    this.#server = createTlsServer({
      ...readTlsFiles(files),
      handshakeTimeout: options.handshakeTimeoutMs,
      requestCert: options.requireClientCert,
      rejectUnauthorized: options.requireClientCert,
    });
    this.#server.on('secureConnection', (socket: TLSSocket) => {
      const key = peerKey(socket);
      const handshake = this.#raw.get(key);
      this.#raw.delete(key);
      if (handshake === undefined) {
        socket.destroy(); // cannot happen: every handshake starts in handshake()
        return;
      }
      // From here on a client's FIN must not stop the replies it is owed (§2);
      // 'end' has not been emitted yet, so the session sees it half-open.
      socket.allowHalfOpen = true;
      socket.setNoDelay(true);
      handshake.onSecure(socket, subjectOf(socket));
    });
    this.#server.on('tlsClientError', (error: Error, socket: TLSSocket) => {
      onFailure(socket, error);
      socket.destroy();
    });
  }

  /** Starts the server side of the handshake on an admitted TCP socket. */
  handshake(raw: Socket, onSecure: Handshake['onSecure']): void {
    const key = peerKey(raw);
    this.#raw.set(key, { raw, onSecure });
    // The TLS socket copies this from the raw one. A client's FIN before the
    // handshake is done must close the socket at once: half-open, it would
    // hold its connection slot and descriptor until the handshake timeout.
    raw.allowHalfOpen = false;
    raw.once('close', () => {
      if (this.#raw.get(key)?.raw === raw) this.#raw.delete(key);
    });
    this.#server.emit('connection', raw);
  }

  /**
   * Reads the certificate files again (SIGHUP). New connections use them;
   * open ones keep theirs. On failure the old ones stay and this throws.
   */
  reload(): void {
    this.#server.setSecureContext(readTlsFiles(this.#files));
  }
}

interface Handshake {
  readonly raw: Socket;
  /** The handshake is done: the TLS socket and its client certificate's subject. */
  readonly onSecure: (socket: TLSSocket, clientCert: string | null) => void;
}

function peerKey(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}

export interface TlsTransportOptions extends TlsHandshakeOptions {
  readonly host: string;
  readonly port: number;
  readonly files: TlsFiles;
  /** A listening socket passed by socket activation (activation.ts): used instead of binding. */
  readonly fd?: number | undefined;
}

/**
 * `--tls-port`: a TCP listener whose sockets are admitted before their
 * handshake (see the top of this file), then handed to the handshaker.
 */
export class TlsTransport implements StreamTransport {
  readonly name = 'tls';
  /** Before the handshake there is no way to send a reply: a refused socket is closed. */
  readonly repliesToRefusals = false;

  private constructor(
    readonly listener: Server,
    readonly host: string,
    readonly handshaker: TlsHandshaker,
  ) {}

  /** Reads the certificate files, then listens. */
  static async listen(
    options: TlsTransportOptions,
    arrive: Arrive,
    onFailure: (raw: Socket, error: Error) => void,
  ): Promise<TlsTransport> {
    const handshaker = new TlsHandshaker(options.files, options, onFailure);
    const listener = await listenTcp(options, (raw) => {
      raw.on('error', ignoreError);
      arrive(raw, transport);
    });
    const host = options.fd === undefined ? options.host : boundHost(listener, options.host);
    const transport = new TlsTransport(listener, host, handshaker);
    return transport;
  }

  /** The port actually bound. */
  get port(): number {
    return boundPort(this.listener, 0);
  }

  get url(): string {
    return tcpUrl(this.host, this.port).replace('tcp:', 'tls:');
  }

  open(raw: Socket, ready: (stream: StreamSocket, clientCert: string | null) => void): void {
    this.handshaker.handshake(raw, ready);
  }

  close(): Promise<void> {
    return closeListener(this.listener);
  }
}

function ignoreError(): void {}
