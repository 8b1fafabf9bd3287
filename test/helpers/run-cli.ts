/**
 * Runs the real `bin/helo` executable for the CLI tests, as a user or a
 * script would: a child process with its own stdin, stdout and stderr, and
 * the checks every CLI test makes on what it printed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { HELO_BIN, REPO_ROOT } from '../../support/server-process.js';

/** How a `bin/helo` run ended and what it printed (both streams decoded as UTF-8). */
export interface CliResult {
  /** The exit status; null when the process was killed by a signal (e.g. the timeout). */
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunHeloOptions {
  /**
   * Written to stdin, which is then closed (default: nothing, an empty
   * stdin). `null` leaves stdin open, for a child that must end by itself.
   */
  readonly input?: string | Buffer | null;
  /** Variables added to the environment, which otherwise has no HELO_* variable. */
  readonly env?: NodeJS.ProcessEnv;
  /** The working directory; default the repository root. */
  readonly cwd?: string;
  /**
   * The child is SIGKILLed after this long (default 10 s), so that a hang
   * fails the test with what it printed instead of stalling the run.
   */
  readonly timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 10_000;

/** A line of a stack trace (`at fn (file.js:12:5)`): never shown to a CLI user. */
const STACK_FRAME = /\bat .*:\d+:\d+/;

/**
 * The environment of this process without any HELO_* variable, plus
 * `extra`: so that the flags and variables under test are the only input.
 */
export function envWithoutHelo(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('HELO_')),
  );
  return { ...env, ...extra };
}

/**
 * Runs `bin/helo ...args` (see RunHeloOptions) and resolves once it has
 * exited and both output streams are closed.
 */
export async function runHelo(
  args: readonly string[],
  options: RunHeloOptions = {},
): Promise<CliResult> {
  const child = spawn(process.execPath, [HELO_BIN, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: envWithoutHelo(options.env),
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  // The child may exit before reading all of stdin: that is not its failure.
  child.stdin.on('error', () => {});
  const input = options.input === undefined ? '' : options.input;
  if (input !== null) child.stdin.end(input);
  const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  try {
    const [status] = (await once(child, 'close')) as [number | null];
    return { status, stdout, stderr };
  } finally {
    clearTimeout(timer);
    child.kill('SIGKILL');
  }
}

/**
 * Asserts that `stderr` is exactly one line (ending in LF) and no stack
 * trace, as every CLI error is (cli.md), and that the line matches
 * `pattern` when given. Returns the line without its LF.
 */
export function assertOneLineError(stderr: string, pattern?: RegExp): string {
  assert.match(stderr, /^[^\n]+\n$/, `expected one line on stderr, got ${JSON.stringify(stderr)}`);
  const line = stderr.slice(0, -1);
  assert.doesNotMatch(line, STACK_FRAME, 'no stack trace');
  if (pattern !== undefined) assert.match(line, pattern);
  return line;
}

/**
 * Asserts a run that failed as cli.md says a command fails: exit `status`,
 * nothing on stdout, and one line on stderr (as assertOneLineError) that
 * matches `expected`, or is exactly `expected` when it is a string.
 */
export function assertFailed(result: CliResult, status: number, expected: RegExp | string): void {
  assert.equal(result.status, status, `exit status; stderr: ${result.stderr}`);
  assert.equal(result.stdout, '');
  if (typeof expected === 'string') assert.equal(assertOneLineError(result.stderr), expected);
  else assertOneLineError(result.stderr, expected);
}

/** A loopback port nothing listens on (it was free a moment ago). */
export async function closedPort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  server.close();
  await once(server, 'close');
  return port;
}
