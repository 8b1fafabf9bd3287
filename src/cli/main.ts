/**
 * `helo`: the command-line entry point. It only dispatches; each subcommand
 * lives in its own file and returns its exit status.
 *
 * Exit statuses (README, docs/ERRORS.md): 0 success, 1 a runtime failure (server
 * unreachable, port in use, store unusable, a request refused), 2 a command
 * line that cannot be run (bad flag or value). Failures print one line on
 * stderr, never a stack trace.
 */
import { readFileSync } from 'node:fs';
import { HeloError, InvalidOptionError } from '../errors.js';
import { watchStopSignals } from './stop-signals.js';

type Subcommand = (argv: string[]) => Promise<number>;

const SUBCOMMANDS: Record<string, { summary: string; load: () => Promise<Subcommand> }> = {
  server: { summary: 'run the server', load: async () => (await import('./server.js')).run },
  client: {
    summary: 'talk to a server, interactively or from a pipe',
    load: async () => (await import('./client.js')).run,
  },
  send: {
    summary: 'send HELO, one DATA per payload, QUIT (for scripts)',
    load: async () => (await import('./send.js')).run,
  },
  store: {
    summary: 'list, export, count, prune or back up the stored records',
    load: async () => (await import('./store.js')).run,
  },
  grade: {
    summary: "check that a server speaks the lab's protocol (a report card, for teachers)",
    load: async () => (await import('./grade.js')).run,
  },
  bench: {
    summary: 'load-test a helo (or any line-protocol) server',
    load: async () => (await import('./bench.js')).run,
  },
};

function usage(): string {
  const width = Math.max(...Object.keys(SUBCOMMANDS).map((name) => name.length)) + 2;
  return [
    'usage: helo <command> [flags]',
    '',
    'commands:',
    ...Object.entries(SUBCOMMANDS).map(
      ([name, { summary }]) => `  ${name.padEnd(width)}${summary}`,
    ),
    '',
    "Run 'helo <command> --help' for the flags of each command,",
    "and 'helo --version' for the version.",
    '',
  ].join('\n');
}

/**
 * The version in the package's own package.json, read where the package is
 * installed: main.js sits in dist/src/cli/, three levels below it (in the
 * repository and in a global install alike).
 */
function packageVersion(): string {
  const file = new URL('../../../package.json', import.meta.url);
  return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
}

/** One line, no stack trace: what a person at a terminal needs. */
function describeFailure(error: unknown): string {
  if (error instanceof HeloError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  if (name === '--version' || name === '-V' || name === 'version') {
    process.stdout.write(`${packageVersion()}\n`);
    return 0;
  }
  // The server stops cleanly on a signal even while it is still starting
  // (bin/helo has caught them already; this covers other ways of running main.js).
  if (name === 'server') void watchStopSignals();
  const subcommand = SUBCOMMANDS[name];
  if (!subcommand) {
    process.stderr.write(`helo: unknown command '${name}' (try 'helo --help')\n`);
    return 2;
  }
  try {
    return await (
      await subcommand.load()
    )(rest);
  } catch (error) {
    process.stderr.write(`helo ${name}: ${describeFailure(error)}\n`);
    // A bad flag or option value (UsageError is one) is the caller's to fix: 2.
    return error instanceof InvalidOptionError ? 2 : 1;
  }
}

main(process.argv.slice(2)).then(
  (status) => {
    process.exitCode = status;
  },
  (error: unknown) => {
    process.stderr.write(`helo: ${describeFailure(error)}\n`);
    process.exitCode = 1;
  },
);
