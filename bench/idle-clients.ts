/**
 * Clients for the idle-connection benchmark: many connections that each
 * say HELO, get `100 OK` and then stay open doing nothing, opened in
 * batches so that the server's accept backlog is never overrun; and a
 * probe that times how long a new client waits for its HELO reply.
 */
import net from 'node:net';

const HELO = Buffer.from('HELO\r\n');
const OK = '100 OK\r\n';

/**
 * Connects, sends HELO and resolves with the socket once `100 OK` came
 * (rejects on any other reply, an error or after `timeoutMs`).
 */
export function heloConnection(host: string, port: number, timeoutMs: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port, noDelay: true });
    let received = '';
    const fail = (error: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(error);
    };
    const timer = setTimeout(
      () => fail(new Error(`no HELO reply within ${timeoutMs} ms`)),
      timeoutMs,
    );
    socket.once('connect', () => socket.write(HELO));
    socket.on('error', fail);
    socket.on('data', function onData(chunk: Buffer) {
      received += chunk.toString('latin1');
      if (!received.includes('\n')) return;
      clearTimeout(timer);
      socket.off('data', onData);
      if (received !== OK) {
        fail(new Error(`HELO answered ${JSON.stringify(received)}`));
        return;
      }
      // Idle from now on: anything the server sends later (a 408 TOUT) is simply dropped.
      socket.on('data', () => {});
      resolve(socket);
    });
  });
}

export interface OpenResult {
  readonly sockets: net.Socket[];
  /** Connections that failed, by message. */
  readonly failures: Readonly<Record<string, number>>;
}

/** Opens `count` HELO'd connections, `batch` at a time, each batch answered before the next. */
export async function openIdleConnections(
  host: string,
  port: number,
  count: number,
  batch: number,
  timeoutMs: number,
  into: net.Socket[] = [],
): Promise<OpenResult> {
  const failures: Record<string, number> = {};
  for (let opened = 0; opened < count; opened += batch) {
    const size = Math.min(batch, count - opened);
    const results = await Promise.allSettled(
      Array.from({ length: size }, () => heloConnection(host, port, timeoutMs)),
    );
    for (const result of results) {
      if (result.status === 'fulfilled') into.push(result.value);
      else {
        const reason =
          result.reason instanceof Error ? result.reason.message : String(result.reason);
        failures[reason] = (failures[reason] ?? 0) + 1;
      }
    }
  }
  return { sockets: into, failures };
}

/** Milliseconds from connect() to the end of `100 OK`, for a new client; then it closes. */
export async function timeHelo(host: string, port: number, timeoutMs: number): Promise<number> {
  const startedAt = performance.now();
  const socket = await heloConnection(host, port, timeoutMs);
  const elapsed = performance.now() - startedAt;
  socket.destroy();
  return elapsed;
}
