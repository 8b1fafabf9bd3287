/**
 * Tiny line-protocol servers with known behaviour, in the test process on
 * 127.0.0.1 ephemeral ports, for checking what the load generator counts.
 */
import { once } from 'node:events';
import net from 'node:net';

export interface TestServer {
  readonly port: number;
  /** Request lines received, over all connections. */
  readonly lines: () => number;
  readonly connections: () => number;
  close(): Promise<void>;
}

export interface LineServerOptions {
  /** The reply to the n-th line (1-based, counted over all connections); null sends nothing. */
  readonly reply: (n: number, line: string) => string | null;
  /** Close the connection after sending this reply. */
  readonly closesAfter?: (line: string) => boolean;
  /** Send each reply in two writes, 2 ms apart, so that the client reads it in pieces. */
  readonly splitReplies?: boolean;
}

export async function startLineServer(options: LineServerOptions): Promise<TestServer> {
  let lines = 0;
  let connections = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer({ noDelay: true }, (socket) => {
    connections++;
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    let partial = '';
    let chain = Promise.resolve();
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => {
      const parts = (partial + text).split('\n');
      partial = parts.pop()!;
      let out = '';
      for (const line of parts) {
        const reply = options.reply(++lines, line);
        if (reply !== null) out += reply;
        if (options.closesAfter?.(line)) {
          flush(out, true);
          return;
        }
      }
      flush(out, false);
    });
    function flush(out: string, end: boolean): void {
      if (!options.splitReplies) {
        if (out !== '') socket.write(out, 'latin1');
        if (end) socket.end();
        return;
      }
      chain = chain.then(async () => {
        const middle = Math.floor(out.length / 2);
        socket.write(out.slice(0, middle), 'latin1');
        await new Promise((resolve) => setTimeout(resolve, 2));
        if (!socket.destroyed) socket.write(out.slice(middle), 'latin1');
        if (end) socket.end();
      });
    }
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    lines: () => lines,
    connections: () => connections,
    async close() {
      for (const socket of sockets) socket.destroy();
      server.close();
      await once(server, 'close');
    },
  };
}

/** `+PONG\r\n` to every line but every `wrongEvery`-th (over all connections), which gets `-ERR\r\n`. */
export function pingServer(wrongEvery = 0, splitReplies = false): Promise<TestServer> {
  return startLineServer({
    reply: (n) => (wrongEvery > 0 && n % wrongEvery === 0 ? '-ERR wrong\r\n' : '+PONG\r\n'),
    splitReplies,
  });
}

/** helo's replies to HELO, DATA and QUIT (closing after QUIT). */
export function sessionServer(): Promise<TestServer> {
  return startLineServer({
    reply: (_, line) => {
      const word = line.trim().split(' ')[0]!.toUpperCase();
      if (word === 'HELO') return '100 OK\r\n';
      if (word === 'DATA') return '300 DRCV\r\n';
      if (word === 'QUIT') return '200 BYE\r\n';
      return '400 BCMD\r\n';
    },
    closesAfter: (line) => /^quit/i.test(line.trim()),
  });
}
