/**
 * Plays systemd's part for the socket-activation tests: it holds a
 * listening socket as its fd 3 (never accepting on it: Node does not touch
 * a descriptor it was not asked to) and, on each `start` line on stdin,
 * runs `helo server ARGS...` with that socket passed the systemd way
 * (fd 3, LISTEN_FDS=1, LISTEN_FDNAMES=tcp, LISTEN_PID = the server's own
 * pid, which `sh` knows as `$$` before it execs). `stop` sends SIGTERM.
 * It reports `listening PID`, `exited STATUS` on stdout, one per line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { HELO_BIN } from '../../support/server-process.js';

const heloArgs = process.argv.slice(2);
let current: ChildProcess | null = null;

function start(): void {
  const child = spawn(
    'sh',
    [
      '-c',
      'LISTEN_PID=$$ LISTEN_FDS=1 LISTEN_FDNAMES=tcp exec "$@"',
      'sh',
      process.execPath,
      HELO_BIN,
      'server',
      ...heloArgs,
    ],
    { stdio: ['ignore', 'pipe', 'inherit', 3] },
  );
  current = child;
  let isListening = false;
  child.stdout!.setEncoding('utf8').on('data', (text: string) => {
    if (!isListening && text.includes('listening on')) {
      isListening = true;
      process.stdout.write(`listening ${child.pid}\n`);
    }
  });
  child.once('exit', (code, signal) => {
    if (current === child) current = null;
    process.stdout.write(`exited ${code ?? signal}\n`);
  });
}

createInterface({ input: process.stdin }).on('line', (line) => {
  if (line === 'start') start();
  if (line === 'stop') current?.kill('SIGTERM');
});
process.stdin.on('end', () => {
  current?.kill('SIGKILL');
  process.exit(0);
});
