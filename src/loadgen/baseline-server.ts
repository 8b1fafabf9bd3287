/**
 * The baseline for honest ratios: a minimal raw-socket server that answers
 * the same lines with the same replies as helo, with no protocol core, no
 * session, no store, no logs, no timers — but tuned as far as Node allows
 * (Buffer scanning for LF, precomputed replies, one write per read), so
 * that a ratio against it measures what helo's extra work costs, not a
 * naive strawman. `helo bench --ceiling` and `npm run bench` start it.
 *
 * helo mode (the default), for the workloads of `helo bench`: a line
 * starting with H answers `100 OK`, D `300 DRCV` (inline DATA only), Q
 * `200 BYE` and closes, anything else `400 BCMD`.
 *
 * Script mode (`--reply-script`, see src/loadgen/baseline.ts): any line
 * protocol; after each step's number of request lines, its reply bytes.
 *
 * Checked against the outside instrument's minimal server
 * (../shared/tools/lineload/tuned-node-server.mjs, docs/BENCH.md): the same
 * tricks (no strings, precomputed replies, one write per read, no Nagle,
 * a listen backlog of 4096 like helo's, reading paused while the kernel's
 * send buffer is full) and a cheaper command match (one byte), so that a
 * ratio against it is never flattered by a slower baseline.
 *
 * Usage: node dist/src/loadgen/baseline-server.js [--host H] [--port N | N]
 *          [--reply-script BASE64-JSON] [--managed]
 * Prints "baseline listening on :PORT". --managed: exit when stdin ends
 * (the parent died) and leave Ctrl-C to the parent.
 */
import { createServer, type Socket } from 'node:net';
import { parseArgs } from 'node:util';
import type { ReplyScript } from './baseline.js';
import { DEFAULT_HOST } from '../defaults.js';

const LF = 0x0a;
const OK = Buffer.from('100 OK\r\n');
const DRCV = Buffer.from('300 DRCV\r\n');
const BYE = Buffer.from('200 BYE\r\n');
const BCMD = Buffer.from('400 BCMD\r\n');
/** Most reads of a pipelining client hold only one kind of request: their replies are cached. */
const MAX_CACHED_REPEAT = 1024;

/** `reply` repeated `count` times, cached per reply and count. */
const repeats = new Map<Buffer, Buffer[]>();
function repeated(reply: Buffer, count: number): Buffer {
  if (count === 1) return reply;
  if (count > MAX_CACHED_REPEAT) return Buffer.concat(Array.from({ length: count }, () => reply));
  let cache = repeats.get(reply);
  if (cache === undefined) repeats.set(reply, (cache = []));
  return (cache[count] ??= Buffer.concat(Array.from({ length: count }, () => reply)));
}

/** The replies of one read, gathered for one write. */
class ReplyBatch {
  #parts: Buffer[] = [];
  #last: Buffer | null = null;
  #runLength = 0;

  add(reply: Buffer): void {
    if (reply === this.#last) {
      this.#runLength++;
      return;
    }
    this.#flushRun();
    this.#last = reply;
    this.#runLength = 1;
  }

  /** Everything added, as one Buffer (null when nothing was). */
  take(): Buffer | null {
    this.#flushRun();
    const parts = this.#parts;
    this.#parts = [];
    if (parts.length === 0) return null;
    return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
  }

  #flushRun(): void {
    if (this.#last !== null) this.#parts.push(repeated(this.#last, this.#runLength));
    this.#last = null;
    this.#runLength = 0;
  }
}

function serveHelo(socket: Socket): void {
  let partial: Buffer | null = null;
  const batch = new ReplyBatch();
  socket.on('data', (chunk: Buffer) => {
    const data: Buffer = partial ? Buffer.concat([partial, chunk]) : chunk;
    let start = 0;
    let lf: number;
    let isQuit = false;
    while ((lf = data.indexOf(LF, start)) !== -1) {
      // The first letter of the command word is enough to pick the reply here.
      const first = data[start]! | 0x20;
      start = lf + 1;
      if (first === 0x68) batch.add(OK);
      else if (first === 0x64) batch.add(DRCV);
      else if (first === 0x71) {
        batch.add(BYE);
        isQuit = true;
        break;
      } else batch.add(BCMD);
    }
    partial = start < data.length && !isQuit ? data.subarray(start) : null;
    const out = batch.take();
    const isFull = out !== null && !socket.write(out);
    if (isQuit) socket.end();
    else if (isFull) pauseUntilDrained(socket);
  });
}

/** Backpressure, as any real server needs: a client that does not read stops being read. */
function pauseUntilDrained(socket: Socket): void {
  socket.pause();
  socket.once('drain', () => socket.resume());
}

function serveScript(script: ReplyScript): (socket: Socket) => void {
  const decode = (steps: ReplyScript['body']): { lines: number; reply: Buffer }[] =>
    steps.map((step) => ({ lines: step.lines, reply: Buffer.from(step.reply, 'base64') }));
  const steps = [...decode(script.setup), ...decode(script.body)];
  const bodyStart = script.setup.length;
  return (socket) => {
    let step = 0;
    let linesSeen = 0;
    const batch = new ReplyBatch();
    socket.on('data', (chunk: Buffer) => {
      let lf = chunk.indexOf(LF);
      while (lf !== -1) {
        const current = steps[step]!;
        if (++linesSeen === current.lines) {
          batch.add(current.reply);
          linesSeen = 0;
          step = step + 1 === steps.length ? bodyStart : step + 1;
        }
        lf = chunk.indexOf(LF, lf + 1);
      }
      const out = batch.take();
      if (out !== null && !socket.write(out)) pauseUntilDrained(socket);
    });
  };
}

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    host: { type: 'string', default: DEFAULT_HOST },
    port: { type: 'string' },
    'reply-script': { type: 'string' },
    managed: { type: 'boolean', default: false },
  },
});
const port = Number(values.port ?? positionals[0] ?? 0);
const script =
  values['reply-script'] === undefined
    ? null
    : (JSON.parse(Buffer.from(values['reply-script'], 'base64').toString('utf8')) as ReplyScript);
const serve = script === null ? serveHelo : serveScript(script);

const server = createServer({ noDelay: true }, (socket) => {
  // A load generator resets connections at the end of a run: not news.
  socket.on('error', () => {});
  serve(socket);
});
server.on('error', (error) => {
  console.error(`baseline server: ${error.message}`);
  process.exit(1);
});
server.listen({ port, host: values.host, backlog: 4096 }, () => {
  const address = server.address();
  console.log(
    `baseline listening on :${typeof address === 'object' && address ? address.port : 0} `,
  );
});
process.on('SIGTERM', () => process.exit(0));
if (values.managed) {
  process.on('SIGINT', () => {});
  process.stdin.on('end', () => process.exit(0));
  process.stdin.on('error', () => process.exit(0));
  process.stdin.resume();
}
