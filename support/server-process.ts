/**
 * Runs the real `bin/helo server` as a child process for tests: waits for
 * its "listening" line, and makes sure it is gone afterwards.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const HELO_BIN = fileURLToPath(new URL('../../bin/helo', import.meta.url));

export interface ServerProcess {
  readonly port: number;
  readonly child: ChildProcess;
  /** Everything the server wrote on stderr so far (JSON log lines). */
  readonly stderr: () => string;
  /** Everything it wrote on stdout so far (the "listening on" lines). */
  readonly stdout: () => string;
  /** Sends SIGTERM and resolves with the exit code (SIGKILL after 12 s). */
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface SpawnServerOptions {
  readonly env?: NodeJS.ProcessEnv;
  /** Start the server as the leader of its own process group. */
  readonly detached?: boolean;
  readonly startTimeoutMs?: number;
  /**
   * A shell command run first, in the shell that then becomes the server
   * (`ulimit -n 256`, `umask 000`): what a user would type before it.
   */
  readonly shell?: string;
  /** Arguments before the caller's: `--port 0` unless given. */
  readonly leadingArgs?: readonly string[];
}

/** A server process that may or may not come to listen: see `listening`. */
export interface StartingServer extends Omit<ServerProcess, 'port'> {
  /** Resolves with the TCP port once it listens; rejects if it exits first or takes too long. */
  readonly listening: Promise<number>;
  /** Resolves when stdout holds a line matching `pattern` (e.g. the ws:// line). */
  untilStdout(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
}

/** Starts `bin/helo server …args` without waiting for it to listen. */
export function startServerProcess(
  args: string[] = ['--store', 'memory:'],
  options: SpawnServerOptions = {},
): StartingServer {
  const heloArgs = [HELO_BIN, 'server', ...(options.leadingArgs ?? ['--port', '0']), ...args];
  const [command, commandArgs] =
    options.shell === undefined
      ? [process.execPath, heloArgs]
      : ['bash', ['-c', `${options.shell} && exec "$0" "$@"`, process.execPath, ...heloArgs]];
  const child = spawn(command, commandArgs, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  child.stdout!.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  const exited = once(child, 'exit');
  const untilStdout = async (pattern: RegExp, timeoutMs = 15_000): Promise<RegExpExecArray> => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const match = pattern.exec(stdout);
      if (match) return match;
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`server exited before printing ${pattern}; stderr: ${stderr}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`server did not print ${pattern} in time; stderr: ${stderr}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
  };
  const listening = untilStdout(/listening on tcp:\/\/[^\s]*:(\d+)/, options.startTimeoutMs).then(
    (match) => Number(match[1]),
    (error: unknown) => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      throw error;
    },
  );
  listening.catch(() => {});
  return {
    child,
    listening,
    untilStdout,
    stderr: () => stderr,
    stdout: () => stdout,
    async stop(signal: NodeJS.Signals = 'SIGTERM') {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill(signal);
      const killer = setTimeout(() => child.kill('SIGKILL'), 12_000);
      const [code] = (await exited) as [number | null];
      clearTimeout(killer);
      return code;
    },
  };
}

/** Starts `bin/helo server …args` and resolves once it listens. */
export async function spawnServer(
  args: string[] = ['--store', 'memory:'],
  options: SpawnServerOptions = {},
): Promise<ServerProcess> {
  const server = startServerProcess(args, options);
  const port = await server.listening;
  return { ...server, port };
}
