/**
 * A WebSocket client made of a raw TCP socket, for tests that need control
 * the `ws` library does not give: it writes pre-built frames as fast as the
 * kernel takes them, and reads nothing until told to (`socket.pause()`), so
 * the server sees a peer that pipelines without reading its replies.
 */
import { once } from 'node:events';
import { connect, type Socket } from 'node:net';

/** One masked text frame per message (RFC 6455 §5.2); the mask key is zero. */
export function textFrames(message: string, count: number): Buffer {
  const payload = Buffer.from(message, 'utf8');
  if (payload.length > 125) throw new RangeError('short messages only');
  const frame = Buffer.concat([Buffer.of(0x81, 0x80 | payload.length, 0, 0, 0, 0), payload]);
  return Buffer.concat(Array.from({ length: count }, () => frame));
}

export class RawWebSocket {
  readonly socket: Socket;
  /** Text messages the server sent, once reading has started. */
  readonly messages: string[] = [];
  #pending: Buffer = Buffer.alloc(0);

  private constructor(socket: Socket, rest: Buffer) {
    this.socket = socket;
    socket.on('error', () => {});
    socket.on('data', (chunk: Buffer) => this.#parse(chunk));
    this.#parse(rest);
  }

  /** Upgrades a TCP connection on `ws://127.0.0.1:port/ws`, then stops reading. */
  static async open(port: number): Promise<RawWebSocket> {
    const socket = connect({ port, host: '127.0.0.1', noDelay: true });
    await once(socket, 'connect');
    socket.write(
      'GET /ws HTTP/1.1\r\n' +
        `Host: 127.0.0.1:${port}\r\n` +
        'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    );
    let head = Buffer.alloc(0);
    for (;;) {
      const [chunk] = (await once(socket, 'data')) as [Buffer];
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf('\r\n\r\n');
      if (end === -1) continue;
      const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
      if (!status.includes(' 101 ')) throw new Error(`upgrade refused: ${status}`);
      socket.pause();
      socket.removeAllListeners('data');
      return new RawWebSocket(socket, head.subarray(end + 4));
    }
  }

  /** Server frames are unmasked; replies are short (payload length < 126). */
  #parse(chunk: Buffer): void {
    let data = this.#pending.length > 0 ? Buffer.concat([this.#pending, chunk]) : chunk;
    while (data.length >= 2) {
      const length = data[1]! & 0x7f;
      if (length > 125) throw new Error('long frames are not expected here');
      if (data.length < 2 + length) break;
      if ((data[0]! & 0x0f) === 0x01) {
        this.messages.push(data.subarray(2, 2 + length).toString('latin1'));
      }
      data = data.subarray(2 + length);
    }
    this.#pending = Buffer.from(data);
  }

  /**
   * Writes `frames` until `count` writes are done or the connection is gone;
   * resolves with how many were written.
   */
  async flood(frames: Buffer, count: number): Promise<number> {
    let written = 0;
    const socket = this.socket;
    // Plain listeners: `events.once` would reject on the socket's error.
    const closed = new Promise<false>((resolve) => socket.once('close', () => resolve(false)));
    while (written < count && !socket.destroyed) {
      written++;
      if (!socket.write(frames)) {
        const drained = new Promise<true>((resolve) => socket.once('drain', () => resolve(true)));
        if (!(await Promise.race([drained, closed]))) break;
      }
    }
    return written;
  }
}
