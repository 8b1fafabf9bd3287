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
}

export async function spawnServer(
  args: string[] = ['--store', 'memory:'],
  options: SpawnServerOptions = {},
): Promise<ServerProcess> {
  const child = spawn(process.execPath, [HELO_BIN, 'server', '--port', '0', ...args], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: options.detached ?? false,
  });
  let stdout = '';
  let stderr = '';
  child.stderr!.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const exited = once(child, 'exit');
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`server did not start in time; stderr: ${stderr}`));
    }, options.startTimeoutMs ?? 15_000);
    child.stdout!.setEncoding('utf8').on('data', (text: string) => {
      stdout += text;
      const match = /listening on tcp:\/\/[^\s]*:(\d+)/.exec(stdout);
      if (match) {
        clearTimeout(timer);
        resolve(Number(match[1]));
      }
    });
    void exited.then(() => {
      clearTimeout(timer);
      reject(new Error(`server exited before listening; stderr: ${stderr}`));
    });
  });
  return {
    port,
    child,
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
