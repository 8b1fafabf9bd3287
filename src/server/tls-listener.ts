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
import type { Socket } from 'node:net';
import {
  createServer as createTlsServer,
  type Server as TlsServer,
  type TLSSocket,
} from 'node:tls';
import { truncateUtf8 } from '../core/truncate-utf8.js';
import { InvalidOptionError } from '../errors.js';

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
  readonly #raw = new Map<string, Socket>();

  constructor(
    files: TlsFiles,
    options: TlsHandshakeOptions,
    onSecure: (socket: TLSSocket, raw: Socket, clientCert: string | null) => void,
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
      const raw = this.#raw.get(key);
      this.#raw.delete(key);
      if (raw === undefined) {
        socket.destroy(); // cannot happen: every handshake starts in handshake()
        return;
      }
      // From here on a client's FIN must not stop the replies it is owed (§2);
      // 'end' has not been emitted yet, so the session sees it half-open.
      socket.allowHalfOpen = true;
      socket.setNoDelay(true);
      onSecure(socket, raw, subjectOf(socket));
    });
    this.#server.on('tlsClientError', (error: Error, socket: TLSSocket) => {
      onFailure(socket, error);
      socket.destroy();
    });
  }

  /** Starts the server side of the handshake on an admitted TCP socket. */
  handshake(raw: Socket): void {
    const key = peerKey(raw);
    this.#raw.set(key, raw);
    // The TLS socket copies this from the raw one. A client's FIN before the
    // handshake is done must close the socket at once: half-open, it would
    // hold its connection slot and descriptor until the handshake timeout.
    raw.allowHalfOpen = false;
    raw.once('close', () => {
      if (this.#raw.get(key) === raw) this.#raw.delete(key);
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

function peerKey(socket: Socket): string {
  return `${socket.remoteAddress}|${socket.remotePort}`;
}
