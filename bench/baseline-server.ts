/**
 * The baseline for honest ratios: a minimal raw-socket server that answers
 * the same lines with the same replies, with no protocol core, no session,
 * no store, no logs, no timers — but tuned as far as Node allows (Buffer
 * scanning for LF, precomputed replies, one write per read), so that a ratio
 * against it measures what helo's extra work costs, not a naive strawman.
 *
 * Usage: node dist/bench/baseline-server.js [port]  (prints "listening on :PORT")
 */
import { createServer } from 'node:net';

const OK = Buffer.from('100 OK\r\n');
const DRCV = Buffer.from('300 DRCV\r\n');
const BYE = Buffer.from('200 BYE\r\n');
const BCMD = Buffer.from('400 BCMD\r\n');

const server = createServer({ noDelay: true }, (socket) => {
  let partial: Buffer | null = null;
  socket.on('error', () => {});
  socket.on('data', (chunk: Buffer) => {
    const data: Buffer = partial ? Buffer.concat([partial, chunk]) : chunk;
    const out: Buffer[] = [];
    let start = 0;
    let lf: number;
    let quit = false;
    while ((lf = data.indexOf(10, start)) !== -1) {
      // First letter of the command word is enough to pick the reply here.
      const first = data[start]! | 0x20;
      out.push(first === 0x68 ? OK : first === 0x64 ? DRCV : first === 0x71 ? BYE : BCMD);
      start = lf + 1;
      if (first === 0x71) {
        quit = true;
        break;
      }
    }
    partial = start < data.length ? data.subarray(start) : null;
    if (out.length === 1) socket.write(out[0]!);
    else if (out.length > 1) socket.write(Buffer.concat(out));
    if (quit) socket.end();
  });
});

server.listen(Number(process.argv[2] ?? 0), '127.0.0.1', () => {
  const address = server.address();
  console.log(
    `baseline listening on :${typeof address === 'object' && address ? address.port : 0} `,
  );
});
process.on('SIGTERM', () => process.exit(0));
