/**
 * A server run as a child process for a comparison in the same run (the
 * baseline of `--ceiling`, the helo servers of `npm run bench`): started on
 * port 0, ready once it prints the port it listens on, and stopped for sure
 * afterwards, also when this process exits early.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { ProcessError } from '../errors.js';

export interface ChildServer {
  readonly port: number;
  readonly pid: number;
  /**
   * Resolves with the first match of `pattern` in what the server printed
   * on stdout (say, the HTTP port of `--http-port 0`); rejects after `timeoutMs`.
   */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** SIGTERM, then SIGKILL if it is still there after a few seconds. */
  stop(): Promise<void>;
  /**
   * SIGKILL at once, to the whole process group when the server leads one
   * (`detached`): workers die at the same instant, as in a machine crash.
   */
  kill(): Promise<void>;
}

export interface ChildServerOptions {
  /** For messages: `baseline server`, `helo server`. */
  readonly name: string;
  /** Node.js arguments: the script, then its own arguments. */
  readonly args: readonly string[];
  /** The whole environment of the child (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
  /** How long to wait for the listening line. */
  readonly startTimeoutMs?: number;
  /** Start it as the leader of its own process group (see `kill()`). */
  readonly detached?: boolean;
}

/** `listening on tcp://127.0.0.1:41263` (helo) or `listening on :41263` (baseline). */
const LISTENING = /listening on (?:tcp:\/\/)?[^\s]*:(\d+)/;
const KILL_AFTER_MS = 5_000;

const running = new Set<ChildProcess>();
let isExitHookInstalled = false;

function killAllOnExit(): void {
  if (isExitHookInstalled) return;
  isExitHookInstalled = true;
  // Synchronous, as 'exit' handlers must be: no child outlives a normal exit.
  process.on('exit', () => {
    for (const child of running) child.kill('SIGKILL');
  });
}

export async function startChildServer(options: ChildServerOptions): Promise<ChildServer> {
  killAllOnExit();
  // stdin stays a pipe: a child that watches it (the baseline server) exits
  // when this process dies, even by SIGKILL.
  const child = spawn(process.execPath, [...options.args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: options.env ?? process.env,
    detached: options.detached ?? false,
  });
  running.add(child);
  const exited = once(child, 'exit');
  void exited.then(() => running.delete(child));
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => {
    // Keep the start of it, for a message if the server fails.
    if (stderr.length < 4096) stderr += text;
  });
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new ProcessError(`the ${options.name} did not start in time`));
    }, options.startTimeoutMs ?? 15_000);
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
      const match = LISTENING.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(
        new ProcessError(`cannot start the ${options.name}: ${error.message}`, { cause: error }),
      );
    });
    void exited.then(([code]) => {
      clearTimeout(timer);
      const said = stderr.trim().split('\n')[0] ?? '';
      reject(
        new ProcessError(
          `the ${options.name} exited (code ${code}) before listening${said ? `: ${said}` : ''}`,
        ),
      );
    });
  });
  return {
    port,
    pid: child.pid!,
    waitForOutput(pattern, timeoutMs = 5_000) {
      return new Promise((resolve, reject) => {
        const look = (): boolean => {
          const match = pattern.exec(stdout);
          if (match === null) return false;
          clearTimeout(timer);
          child.stdout!.off('data', onData);
          resolve(match);
          return true;
        };
        const onData = (): void => void look();
        const timer = setTimeout(() => {
          child.stdout!.off('data', onData);
          reject(new ProcessError(`the ${options.name} did not print ${String(pattern)} in time`));
        }, timeoutMs);
        // After the 'data' listener above that appends to stdout, so it sees the new text.
        if (!look()) child.stdout!.on('data', onData);
      });
    },
    async kill() {
      try {
        if (options.detached === true) process.kill(-child.pid!, 'SIGKILL');
        else child.kill('SIGKILL');
      } catch {
        // Gone already.
      }
      if (child.exitCode === null && child.signalCode === null) await exited;
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
      await exited;
      clearTimeout(killer);
    },
  };
}
