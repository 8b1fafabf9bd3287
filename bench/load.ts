/**
 * A small load script (until `helo bench` exists): starts `bin/helo server`
 * as a child process and measures, from this process,
 *
 *   helo   pipelined HELO replies/s over N connections (depth D in flight each)
 *   data   acknowledged inline DATA/s (100-byte payloads) over N connections,
 *          with the store given (default: durable SQLite in a temp dir)
 *   idle   the server's resident memory with N idle connections
 *
 * Usage: npm run load -- [helo|data|idle|all] [--connections N] [--depth D]
 *        [--seconds S] [--store URL]
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const BIN = fileURLToPath(new URL('../../bin/helo', import.meta.url));

interface Server {
  port: number;
  child: ChildProcess;
}

const BASELINE = fileURLToPath(new URL('./baseline-server.js', import.meta.url));

async function startServer(args: string[]): Promise<Server> {
  return startProcess([BIN, 'server', '--port', '0', '--log-level', 'warn', ...args]);
}

async function startProcess(args: string[]): Promise<Server> {
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.setEncoding('utf8');
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (text: string) => {
      out += text;
      const match = /:(\d+) /.exec(out);
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', () => reject(new Error('server exited')));
  });
  return { port, child };
}

async function stopServer(server: Server): Promise<void> {
  server.child.kill('SIGTERM');
  await once(server.child, 'exit');
}

function rssKiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? NaN);
}

async function open(port: number): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1', noDelay: true });
  await once(socket, 'connect');
  return socket;
}

/**
 * Keeps `depth` requests in flight on each connection for `seconds`; every
 * reply has the same length, so replies are counted by bytes.
 */
async function closedLoop(
  port: number,
  connections: number,
  depth: number,
  seconds: number,
  request: Buffer,
  replyLength: number,
): Promise<number> {
  const sockets = await Promise.all(Array.from({ length: connections }, () => open(port)));
  const batches = new Map<number, Buffer>();
  const batchOf = (count: number): Buffer => {
    let batch = batches.get(count);
    if (!batch) {
      batch = Buffer.concat(Array.from({ length: count }, () => request));
      batches.set(count, batch);
    }
    return batch;
  };
  let replies = 0;
  let isRunning = true;
  for (const socket of sockets) {
    let spare = 0;
    socket.on('data', (chunk: Buffer) => {
      const bytes = spare + chunk.length;
      const count = Math.floor(bytes / replyLength);
      spare = bytes % replyLength;
      replies += count;
      if (isRunning && count > 0) socket.write(batchOf(count));
    });
    socket.write(batchOf(depth));
  }
  await new Promise((resolve) => setTimeout(resolve, 1000)); // warm-up
  const before = replies;
  const startedAt = process.hrtime.bigint();
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000));
  const counted = replies - before;
  const elapsed = Number(process.hrtime.bigint() - startedAt) / 1e9;
  isRunning = false;
  for (const socket of sockets) socket.destroy();
  return counted / elapsed;
}

async function idleMemory(port: number, pid: number, connections: number): Promise<string> {
  await new Promise((resolve) => setTimeout(resolve, 300));
  const before = rssKiB(pid);
  const sockets: Socket[] = [];
  for (let i = 0; i < connections; i++) sockets.push(await open(port));
  // Each says HELO once, so that every session is really set up.
  for (const socket of sockets) socket.write('HELO\r\n');
  await new Promise((resolve) => setTimeout(resolve, 1000));
  const after = rssKiB(pid);
  for (const socket of sockets) socket.destroy();
  const perConnection = ((after - before) / connections).toFixed(1);
  return `server RSS ${before} KiB -> ${after} KiB with ${connections} idle connections (${perConnection} KiB each)`;
}

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: {
      connections: { type: 'string' },
      depth: { type: 'string' },
      seconds: { type: 'string', default: '5' },
      store: { type: 'string' },
    },
  });
  const which = positionals[0] ?? 'all';
  const seconds = Number(values.seconds);
  const dir = mkdtempSync(join(tmpdir(), 'helo-load-'));
  try {
    if (which === 'helo' || which === 'all') {
      const connections = Number(values.connections ?? 50);
      for (const depth of values.depth ? [Number(values.depth)] : [1, 32]) {
        // helo and the baseline alternate, twice each, in the same run.
        const rates: Record<'helo' | 'baseline', number[]> = { helo: [], baseline: [] };
        for (let round = 0; round < 2; round++) {
          for (const kind of ['baseline', 'helo'] as const) {
            const server =
              kind === 'helo'
                ? await startServer(['--store', 'memory:'])
                : await startProcess([BASELINE, '0']);
            rates[kind].push(
              await closedLoop(
                server.port,
                connections,
                depth,
                seconds,
                Buffer.from('HELO\r\n'),
                '100 OK\r\n'.length,
              ),
            );
            await stopServer(server);
          }
        }
        const best = (list: number[]): number => Math.max(...list);
        console.log(
          `helo  ${connections} connections, depth ${depth}: ${Math.round(best(rates.helo))} replies/s; ` +
            `baseline ${Math.round(best(rates.baseline))}/s; ratio ${(best(rates.helo) / best(rates.baseline)).toFixed(2)}`,
        );
      }
    }
    if (which === 'data' || which === 'all') {
      const connections = Number(values.connections ?? 50);
      const depth = Number(values.depth ?? 1);
      const stores = values.store ? [values.store] : [`sqlite:${join(dir, 'load.db')}`, 'memory:'];
      for (const store of stores) {
        const server = await startServer(['--store', store]);
        const payload = 'x'.repeat(100);
        const rate = await closedLoop(
          server.port,
          connections,
          depth,
          seconds,
          Buffer.from(`DATA ${payload}\r\n`),
          '300 DRCV\r\n'.length,
        );
        const kind = store.startsWith('sqlite:') ? 'durable sqlite' : store;
        console.log(
          `data  ${connections} connections, depth ${depth}, 100-byte payloads, ${kind}: ${Math.round(rate)} acks/s`,
        );
        await stopServer(server);
      }
    }
    if (which === 'idle' || which === 'all') {
      const connections = Number(values.connections ?? 1000);
      for (const kind of ['baseline', 'helo'] as const) {
        const server =
          kind === 'helo'
            ? await startServer(['--store', 'memory:'])
            : await startProcess([BASELINE, '0']);
        console.log(
          `idle  ${kind}: ${await idleMemory(server.port, server.child.pid!, connections)}`,
        );
        await stopServer(server);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
