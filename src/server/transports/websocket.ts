/**
 * WebSocket (`/ws` on the HTTP port, docs/PROTOCOL.md §7). The HTTP port
 * (http-listener.ts) admits every HTTP connection as it arrives, like a
 * socket of any other transport, and checks the upgrade (token, Origin);
 * here the upgraded WebSocket becomes a stream of lines
 * (src/net/websocket-line-stream.ts) that a `Connection` serves exactly like
 * a socket. It keeps the HTTP connection's admission slot.
 */
import type { IncomingMessage } from 'node:http';
import type { Logger } from 'pino';
import type { WebSocket } from 'ws';
import { WebSocketLineStream } from '../../net/websocket-line-stream.js';

/** The WebSocket as the stream its session reads, with the client's address. */
export function webSocketStream(
  ws: WebSocket,
  request: IncomingMessage,
  logger: Logger,
): WebSocketLineStream {
  const raw = request.socket;
  const stream = new WebSocketLineStream(ws, { address: raw.remoteAddress, port: raw.remotePort });
  stream.on('close', () => {
    if (stream.protocolError !== null) {
      logger.warn(
        { peer: raw.remoteAddress, reason: stream.protocolError },
        'WebSocket closed: not the protocol',
      );
    }
  });
  return stream;
}
