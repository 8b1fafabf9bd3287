/**
 * `helo grade [ADDRESS]`: a black-box grader for teachers (docs/GRADING.md).
 *
 * Runs the checks of one profile against any server that claims to speak
 * the lab protocol and prints a report card (or one JSON object). The checks
 * themselves live in src/grade/checks.ts; this file reads the command line,
 * makes sure something answers at the address, and formats the result.
 */
import { DEFAULT_HOST, DEFAULT_PORT } from '../defaults.js';
import { parseAddress } from '../client/address.js';
import { checksOf, type GradedCheck, type Profile, PROFILES, runChecks } from '../grade/checks.js';
import { type Lang, MESSAGES, pickLang, translateDetail } from '../grade/messages.js';
import { describeTarget, type GradeTarget, openWire } from '../grade/wire.js';
import {
  type CommandHelp,
  formatHelp,
  hostFlag,
  intFlag,
  parseFlags,
  type ParsedFlags,
  secondsFlag,
  UsageError,
} from './args.js';

/** Per check: long enough for a server that answers after 100 ms of silence, short enough to grade a class. */
const DEFAULT_CHECK_TIMEOUT_MS = 3000;

const HELP: CommandHelp = {
  usage: 'helo grade [ADDRESS] [flags]',
  summary:
    "Check that a server speaks the lab's protocol: a report card with one line per check, then a score.",
  flags: {
    host: {
      type: 'string',
      valueName: 'ADDR',
      default: DEFAULT_HOST,
      description: 'server address',
    },
    port: {
      type: 'string',
      valueName: 'N',
      default: String(DEFAULT_PORT),
      description: 'TCP port',
    },
    profile: {
      type: 'string',
      valueName: 'lab|strict',
      default: 'lab',
      description: "lab: the exercise as its clients use it; strict: all of the protocol's framing",
    },
    json: { type: 'boolean', description: 'print one JSON object instead of the report card' },
    timeout: {
      type: 'string',
      valueName: 'SECONDS',
      default: String(DEFAULT_CHECK_TIMEOUT_MS / 1000),
      description: 'longest time for each check',
    },
    lang: {
      type: 'string',
      valueName: 'en|es',
      description: 'language of the report card (default: from LANG, else en)',
    },
  },
  notes: [
    'ADDRESS is tcp://HOST:PORT, HOST:PORT or unix:/PATH; it wins over --host and --port.',
    '',
    'lab checks the exercise: one command per send with no line terminator, each',
    'reply awaited; replies may end in LF or CRLF; a description line after',
    '400 BCMD is allowed. strict checks docs/PROTOCOL.md sections 2 and 3: CRLF replies,',
    'lines split and merged, pipelining, case, blanks, bare DATA, half-close, and',
    'several clients at once (a sequential server is reported, not failed).',
    'Each check, its usual cause and its fix: docs/GRADING.md (docs/GRADING.es.md).',
    '',
    'Exit status: 0 when every check passed, 1 when one failed or nothing answers',
    'at the address, 2 for a bad command line.',
  ].join('\n'),
};

export async function run(argv: string[]): Promise<number> {
  const flags = parseFlags(HELP, argv);
  if (flags.help) {
    process.stdout.write(formatHelp(HELP));
    return 0;
  }
  if (flags.positionals.length > 1) {
    throw new UsageError(`expected at most one ADDRESS, got '${flags.positionals.join(' ')}'`);
  }
  const profile = (flags.values['profile'] ?? 'lab') as Profile;
  if (!PROFILES.includes(profile)) {
    throw new UsageError(`--profile must be lab or strict, got '${String(profile)}'`);
  }
  const langFlag = flags.values['lang'];
  const lang = pickLang(typeof langFlag === 'string' ? langFlag : undefined, process.env);
  if (lang === null) throw new UsageError(`--lang must be en or es, got '${String(langFlag)}'`);
  const timeoutMs = secondsFlag(flags.values, 'timeout', DEFAULT_CHECK_TIMEOUT_MS);
  if (timeoutMs === 0) throw new UsageError('--timeout must be more than 0');
  const target = targetOf(flags.values, flags.positionals[0]);

  // Nothing answering is one clear line and status 1, not a card of failures.
  (await openWire(target, timeoutMs)).close();

  const isJson = flags.values['json'] === true;
  // A reader that goes away (`| head`) ends the card, not the grading: the
  // exit status still tells.
  process.stdout.on('error', () => undefined);
  const messages = MESSAGES[lang];
  const output = process.stdout;
  if (!isJson) output.write(`${messages.title(profile, describeTarget(target))}\n\n`);
  const results = await runChecks(target, checksOf(profile), timeoutMs, (result) => {
    if (!isJson) output.write(formatCheck(result, lang));
  });
  const graded = results.filter((result) => !result.informational);
  const passed = graded.filter((result) => result.passed).length;
  const failed = graded.length - passed;
  if (isJson) {
    output.write(
      `${JSON.stringify({
        profile,
        passed,
        failed,
        checks: results.map(({ name, passed: ok, detail, informational, finding }) => ({
          name,
          passed: ok,
          detail,
          ...(informational ? { informational, finding } : {}),
        })),
      })}\n`,
    );
  } else {
    output.write(`\n${messages.score(passed, graded.length)}\n${messages.explain}\n`);
  }
  return failed === 0 ? 0 : 1;
}

function targetOf(values: ParsedFlags['values'], address: string | undefined): GradeTarget {
  const port = intFlag(values, 'port', DEFAULT_PORT, 1, 65535);
  if (address === undefined) return { host: hostFlag(values), port };
  const parsed = parseAddress(address, port);
  if (parsed.transport === 'tcp') return { host: parsed.host, port: parsed.port };
  if (parsed.transport === 'unix') return { path: parsed.path };
  throw new UsageError(`helo grade speaks tcp:// and unix: addresses, got '${address}'`);
}

function formatCheck(result: GradedCheck, lang: Lang): string {
  const messages = MESSAGES[lang];
  const title = messages.checks[result.name] ?? result.name;
  if (result.informational) {
    const finding = result.finding === 'sequential' ? messages.sequential : messages.concurrent;
    return `${messages.note}  ${result.name}: ${finding}\n`;
  }
  const head = `${result.passed ? messages.pass : messages.fail}  ${result.name}: ${title}\n`;
  if (result.passed) return head;
  const [sent, got, expected] = [result.detail.sent, result.detail.got, result.detail.expected].map(
    (text) => translateDetail(text, lang),
  );
  const width = Math.max(messages.sent.length, messages.got.length, messages.expected.length);
  return [
    head.trimEnd(),
    `        ${messages.sent.padEnd(width)}  ${sent}`,
    `        ${messages.got.padEnd(width)}  ${got}`,
    `        ${messages.expected.padEnd(width)}  ${expected}`,
    '',
  ].join('\n');
}
