/**
 * What a stream transport is to the server (docs/ARCHITECTURE.md, "Transports"):
 * a listener that hands each connected socket to the server, and, once the
 * server has admitted it, turns it into the stream a session reads.
 *
 *   listener 'connection' --> arrive(socket, transport)     one place for every transport
 *     --> admission (limits) --> transport.open(socket)   TCP, Unix: the socket; TLS: the handshake
 *     --> Connection
 *
 * `arrive` is the server's single entry point: a stage that must see every
 * stream socket first (a PROXY-protocol header naming the real client) goes
 * there once, for TCP, Unix and TLS alike (before the handshake). The
 * WebSocket comes in through the HTTP port (websocket.ts); UDP has no
 * connections and keeps its own shape (udp.ts).
 */
import type { Server, Socket } from 'node:net';
import type { StreamSocket, Transport } from '../connection.js';

export interface StreamTransport {
  readonly name: Exclude<Transport, 'ws'>;
  /** Where clients reach it: `tcp://…`, `unix:…`, `tls://…`. */
  readonly url: string;
  /**
   * How a refused socket is told: `503 BUSY`, or (TLS, before its
   * handshake, when no reply can be sent) nothing, by closing it.
   */
  readonly repliesToRefusals: boolean;
  /**
   * Makes an admitted socket ready for its session: `ready` gets the stream
   * to serve, at once (TCP, Unix) or after a TLS handshake. A socket that
   * never gets ready just closes.
   */
  open(socket: Socket, ready: (stream: StreamSocket, clientCert: string | null) => void): void;
  /** The listening socket (the server logs its 'error' events). */
  readonly listener: Server;
  /** Stops accepting; resolves once the listener is closed. */
  close(): Promise<void>;
}

/** How a transport hands each connected socket to the server. */
export type Arrive = (socket: Socket, transport: StreamTransport) => void;

/** Resolves once `server` has closed (its open connections are the server's business). */
export function closeListener(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}
