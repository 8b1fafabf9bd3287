/**
 * Flag parsing shared by every subcommand: `node:util` parseArgs, plus the
 * `HELO_<FLAG>` environment variables (README, "Command-line reference"; a flag on the command line
 * wins over the environment) and help text generated from the same table.
 */
import { parseArgs } from 'node:util';
import { InvalidOptionError } from '../errors.js';
import { DEFAULT_HOST, DEFAULT_PORT, MAX_TIMER_MS } from '../defaults.js';

export interface FlagSpec {
  readonly type: 'string' | 'boolean';
  /** Shown in help; the default itself lives in the options module. */
  readonly default?: string;
  /** The placeholder in help, e.g. `N`, `SECONDS`. */
  readonly valueName?: string;
  readonly description: string;
  readonly multiple?: boolean;
}

export type FlagSpecs = Readonly<Record<string, FlagSpec>>;

export interface CommandHelp {
  /** e.g. `helo server [flags]` */
  readonly usage: string;
  readonly summary: string;
  readonly flags: FlagSpecs;
  /** Extra paragraphs after the flag list. */
  readonly notes?: string;
}

export interface ParsedFlags {
  readonly values: Record<string, string | boolean | string[] | undefined>;
  readonly positionals: string[];
  readonly help: boolean;
}

/** A command line that cannot be run: the CLI prints it on one line, exit 2. */
export class UsageError extends InvalidOptionError {}

/** `--max-line` reads from `HELO_MAX_LINE`. */
function envName(flag: string): string {
  return `HELO_${flag.toUpperCase().replace(/-/g, '_')}`;
}

export function parseFlags(
  help: CommandHelp,
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
): ParsedFlags {
  const options: Record<string, { type: 'string' | 'boolean'; multiple?: boolean }> = {
    help: { type: 'boolean' },
  };
  for (const [name, spec] of Object.entries(help.flags)) {
    options[name] = { type: spec.type, ...(spec.multiple ? { multiple: true } : {}) };
  }
  let parsed;
  try {
    parsed = parseArgs({ args: [...argv], options, allowPositionals: true, strict: true });
  } catch (error) {
    // parseArgs messages are long and mention internals; keep the first sentence.
    const message = (error instanceof Error ? error.message : String(error)).split(/\.\s/)[0];
    throw new UsageError(`${message ?? 'bad arguments'}`);
  }
  const values = { ...parsed.values } as Record<string, string | boolean | string[] | undefined>;
  for (const [name, spec] of Object.entries(help.flags)) {
    if (values[name] !== undefined) continue;
    const fromEnv = env[envName(name)];
    if (fromEnv === undefined || fromEnv === '') continue;
    if (spec.type === 'boolean') values[name] = !/^(0|false|no|off)$/i.test(fromEnv);
    else values[name] = spec.multiple ? fromEnv.split(',') : fromEnv;
  }
  return { values, positionals: parsed.positionals, help: parsed.values.help === true };
}

export function formatHelp(help: CommandHelp): string {
  const rows = Object.entries(help.flags).map(([name, spec]) => {
    const left = `  --${name}${spec.type === 'string' ? ` ${spec.valueName ?? 'VALUE'}` : ''}`;
    const right = `${spec.description}${spec.default !== undefined ? ` (default: ${spec.default})` : ''} [${envName(name)}]`;
    return [left, right] as const;
  });
  rows.push(['  --help', 'show this help']);
  const width = Math.max(...rows.map(([left]) => left.length)) + 2;
  const lines = [
    `usage: ${help.usage}`,
    '',
    help.summary,
    '',
    'flags:',
    // A description of several lines goes on in its own column.
    ...rows.map(
      ([left, right]) => left.padEnd(width) + right.replaceAll('\n', `\n${' '.repeat(width)}`),
    ),
  ];
  if (help.notes) lines.push('', help.notes);
  return lines.join('\n') + '\n';
}

function stringFlag(values: ParsedFlags['values'], name: string): string | undefined {
  const value = values[name];
  return typeof value === 'string' ? value : undefined;
}

/**
 * A whole number, or `fallback` when the flag is absent. Text to number
 * only: the range is checked where the option is used (for `helo server`,
 * resolveServerOptions).
 */
export function wholeNumberFlag(
  values: ParsedFlags['values'],
  name: string,
  fallback: number,
): number {
  const raw = stringFlag(values, name);
  if (raw === undefined) return fallback;
  if (!/^\d+$/.test(raw.trim())) {
    throw new UsageError(`--${name} must be a whole number, got '${raw}'`);
  }
  return Number(raw.trim());
}

/** An integer in [min, max], or `fallback` when the flag is absent. */
export function intFlag(
  values: ParsedFlags['values'],
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = stringFlag(values, name);
  const value = wholeNumberFlag(values, name, fallback);
  if (raw === undefined) return value;
  if (value < min || value > max) {
    throw new UsageError(`--${name} must be between ${min} and ${max}, got ${raw}`);
  }
  return value;
}

/** A non-negative number of seconds (fractions allowed), returned in ms. */
export function secondsFlag(
  values: ParsedFlags['values'],
  name: string,
  fallbackMs: number,
): number {
  const raw = stringFlag(values, name);
  if (raw === undefined) return fallbackMs;
  if (!/^\d+(\.\d+)?$/.test(raw.trim())) {
    throw new UsageError(`--${name} must be a number of seconds, got '${raw}'`);
  }
  // Round up: a tiny positive value must not become 0, which means "off".
  const ms = Math.ceil(Number(raw.trim()) * 1000);
  if (ms > MAX_TIMER_MS) throw new UsageError(`--${name} is too large: ${raw}`);
  return ms;
}

export function textFlag(values: ParsedFlags['values'], name: string, fallback: string): string {
  const raw = stringFlag(values, name);
  if (raw === undefined) return fallback;
  if (raw.trim() === '') throw new UsageError(`--${name} must not be empty`);
  return raw;
}

/** Flags every network subcommand shares. */
export const ADDRESS_FLAGS: FlagSpecs = {
  host: { type: 'string', valueName: 'ADDR', default: DEFAULT_HOST, description: 'server address' },
  port: { type: 'string', valueName: 'N', default: String(DEFAULT_PORT), description: 'TCP port' },
};

export function hostFlag(values: ParsedFlags['values']): string {
  return textFlag(values, 'host', DEFAULT_HOST);
}
