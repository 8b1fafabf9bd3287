/**
 * What deep pipelining costs the server's memory, over TCP and over
 * WebSocket. For each transport a fresh `helo server --store memory:
 * --http-port 0` runs as a child process; N raw clients each write `HELO`
 * as fast as the kernel takes it (the next write as soon as the last one
 * drained) while reading every reply, for a few seconds. The server's
 * resident memory (VmRSS) is sampled every 20 ms: the table gives its
 * growth over the idle server, at the peak, and the replies per second.
 *
 * Usage: node dist/bench/ws-pipelining.js [--connections N] [--duration S]
 *          [--transports tcp,ws,ws-lib] [--rounds N] [--stall-ms MS]
 *
 * --stall-ms MS: raw clients (tcp, ws) stop reading for MS every other MS,
 * so their replies back up in the server now and then.
 */
import { connect, type Socket } from 'node:net';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { WebSocket } from 'ws';
import { RawWebSocket, textFrames } from '../support/raw-websocket.js';
import { spawnServer } from '../support/server-process.js';
import { readRss } from '../support/process-rss.js';

/** `ws-lib`: WebSocket through the `ws` library, a message event per reply (a slower reader). */
type Transport = 'tcp' | 'ws' | 'ws-lib';
const MiB = 1024 * 1024;
/** Requests per write: 1,000 lines or messages. */
const BATCH = 1_000;
const REQUEST = {
  tcp: Buffer.from('HELO\r\n'.repeat(BATCH)),
  ws: textFrames('HELO', BATCH),
};
/** `100 OK\r\n`, and as a WebSocket frame (2 bytes of header). */
const REPLY_BYTES = { tcp: 8, ws: 10 };
/** What a `ws-lib` client lets pile up in its own buffer before it waits. */
const WS_LIB_MAX_BUFFERED = 1 << 20;

interface Result {
  readonly transport: Transport;
  readonly idleMiB: number;
  readonly growthMiB: number;
  readonly repliesPerSecond: number;
}

/** Writes `request` over and over, each write once the last one drained, until `until`. */
async function pump(socket: Socket, request: Buffer, until: number): Promise<void> {
  while (!socket.destroyed && Date.now() < until) {
    if (socket.write(request)) continue;
    // Not past the end: the server may take minutes to read what the
    // kernel holds for it.
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => done(), Math.max(0, until - Date.now()));
      const done = (): void => {
        clearTimeout(timer);
        socket.off('drain', done).off('close', done);
        resolve();
      };
      socket.once('drain', done).once('close', done);
    });
  }
}

/** One client connection: writes requests until `until`, counts the replies. */
interface Pipeliner {
  readonly replies: () => number;
  pump(until: number): Promise<void>;
  destroy(): void;
}

async function openSocket(
  transport: 'tcp' | 'ws',
  port: number,
  httpPort: number,
): Promise<Socket> {
  if (transport === 'tcp') {
    const socket = connect({ port, host: '127.0.0.1', noDelay: true });
    await once(socket, 'connect');
    return socket;
  }
  const socket = (await RawWebSocket.open(httpPort)).socket;
  socket.removeAllListeners('data'); // count bytes only, below
  return socket;
}

async function open(
  transport: Transport,
  port: number,
  httpPort: number,
  stallMs: number,
): Promise<Pipeliner> {
  if (transport === 'ws-lib') {
    const ws = new WebSocket(`ws://127.0.0.1:${httpPort}/ws`);
    ws.on('error', () => {});
    let replies = 0;
    ws.on('message', () => replies++);
    await once(ws, 'open');
    return {
      replies: () => replies,
      async pump(until) {
        while (ws.readyState === ws.OPEN && Date.now() < until) {
          if (ws.bufferedAmount > WS_LIB_MAX_BUFFERED) await sleep(1);
          else for (let i = 0; i < BATCH; i++) ws.send('HELO');
          // Let the replies in: their events are this client's reading.
          await new Promise(setImmediate);
        }
      },
      destroy: () => ws.terminate(),
    };
  }
  const socket = await openSocket(transport, port, httpPort);
  let replyBytes = 0;
  socket.on('error', () => {});
  socket.on('data', (chunk: Buffer) => (replyBytes += chunk.length));
  socket.resume();
  if (stallMs > 0) {
    // A reader that keeps up only half the time: reads for stallMs, then not.
    const timer = setInterval(
      () => (socket.isPaused() ? socket.resume() : socket.pause()),
      stallMs,
    );
    socket.once('close', () => clearInterval(timer));
  }
  return {
    replies: () => replyBytes / REPLY_BYTES[transport],
    pump: (until) => pump(socket, REQUEST[transport], until),
    destroy: () => socket.destroy(),
  };
}

async function run(
  transport: Transport,
  connections: number,
  durationMs: number,
  stallMs: number,
): Promise<Result> {
  const server = await spawnServer([
    '--store',
    'memory:',
    '--http-port',
    '0',
    '--log-level',
    'warn',
  ]);
  try {
    let httpPort = 0;
    while (httpPort === 0) {
      const match = /listening on ws:\/\/127\.0\.0\.1:(\d+)\/ws/.exec(server.stdout());
      if (match) httpPort = Number(match[1]);
      else await sleep(20);
    }
    const pid = server.child.pid!;
    await sleep(500);
    const idle = readRss(pid);
    let peak = idle;
    const sampler = setInterval(() => (peak = Math.max(peak, readRss(pid))), 20);
    const clients = await Promise.all(
      Array.from({ length: connections }, () => open(transport, server.port, httpPort, stallMs)),
    );
    const startedAt = Date.now();
    await Promise.all(clients.map((client) => client.pump(startedAt + durationMs)));
    const seconds = (Date.now() - startedAt) / 1000;
    clearInterval(sampler);
    const replies = clients.reduce((sum, client) => sum + client.replies(), 0);
    for (const client of clients) client.destroy();
    return {
      transport,
      idleMiB: idle / MiB,
      growthMiB: (peak - idle) / MiB,
      repliesPerSecond: replies / seconds,
    };
  } finally {
    await server.stop();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      connections: { type: 'string', default: '100' },
      duration: { type: 'string', default: '5' },
      transports: { type: 'string', default: 'tcp,ws' },
      rounds: { type: 'string', default: '1' },
      'stall-ms': { type: 'string', default: '0' },
    },
  });
  const connections = Number(values.connections);
  const durationMs = Number(values.duration) * 1000;
  const stallMs = Number(values['stall-ms']);
  const transports = values.transports.split(',') as Transport[];
  console.log(
    `${connections} connections pipelining HELO for ${durationMs / 1000} s, reading replies` +
      (stallMs > 0 ? ` (stalling ${stallMs} ms of every ${2 * stallMs} ms)` : ''),
  );
  console.log('| transport | idle RSS (MiB) | peak growth (MiB) | replies/s |');
  console.log('|---|---:|---:|---:|');
  for (let round = 0; round < Number(values.rounds); round++) {
    for (const transport of transports) {
      const result = await run(transport, connections, durationMs, stallMs);
      console.log(
        `| ${result.transport} | ${result.idleMiB.toFixed(1)} | ${result.growthMiB.toFixed(1)} | ${Math.round(result.repliesPerSecond)} |`,
      );
    }
  }
}

await main();
