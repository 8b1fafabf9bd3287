/**
 * `npm run soak -- --minutes N`: a real server under a mixed workload for
 * N minutes (issue 6), with every reply checked and the store checked at
 * the end.
 *
 * Starts `helo server --store sqlite:<temp file>` and runs, with bounded
 * concurrency, the conversations of bench/soak-workload.ts: whole sessions,
 * pipelined HELO bursts, DATA of every size up to the line limit, overlong
 * lines, clients that read late, clients that vanish mid-DATA or
 * mid-pipeline, and now and then one that never reads (which the server
 * must cut off after --slow-reader-timeout). Meanwhile it samples the
 * server's resident memory.
 *
 * Passes (exit 0) when:
 *   - no reply differed from what the protocol calls for, and no connection
 *     failed except the ones the soak broke on purpose;
 *   - the SQLite file holds every acknowledged payload exactly once, no
 *     payload twice, none that was cut off or too long, nothing else;
 *   - memory plateaued: after warm-up, the end is within 10% + 8 MiB of the
 *     middle (see plateauVerdict).
 * Otherwise it prints what failed and exits 1.
 *
 * Usage: npm run soak -- [--minutes N | --seconds N] [--concurrency N]
 *          [--never-reads-every S] [--mode MODE] [--json] [--keep]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startChildServer } from '../src/loadgen/child-server.js';
import { describeMachine, loadAverage, machineLines, type MachineInfo } from './machine.js';
import { formatCount, markdownTable } from './markdown-table.js';
import { PayloadLedger, type LedgerVerdict } from './payload-ledger.js';
import { treeRss } from './process-tree-rss.js';
import {
  INJECTED_FAULTS,
  neverReads,
  pickScenario,
  runScenario,
  SCENARIOS,
  SoakCounts,
  type SoakContext,
} from './soak-workload.js';

const HELO_BIN = fileURLToPath(new URL('../../bin/helo', import.meta.url));
const MODES = ['event-loop', 'sequential', 'fork', 'cluster'] as const;
const MAX_LINE = 8192;
/** Short, so that a client that never reads is cut off often enough to be seen. */
const SLOW_READER_TIMEOUT_S = 5;
const REPLY_TIMEOUT_MS = 30_000;
const SAMPLE_EVERY_MS = 2_000;
const PROGRESS_EVERY_MS = Number(process.env.SOAK_PROGRESS_MS ?? 10_000);
/** Memory plateaued when the end is within this of the middle (see plateauVerdict). */
const PLATEAU_FACTOR = 1.1;
const PLATEAU_SLACK_BYTES = 8 * 2 ** 20;

const CLEAN_ENV = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => !name.startsWith('HELO_')),
);

interface Settings {
  readonly durationMs: number;
  readonly concurrency: number;
  /** How often a client that never reads comes along; 0 = never. */
  readonly neverReadsEveryMs: number;
  readonly mode: (typeof MODES)[number];
  readonly json: boolean;
  readonly keep: boolean;
  readonly command: string;
}

function settingsFromArgs(): Settings {
  const { values } = parseArgs({
    options: {
      minutes: { type: 'string' },
      seconds: { type: 'string' },
      concurrency: { type: 'string', default: '50' },
      'never-reads-every': { type: 'string', default: '30' },
      mode: { type: 'string', default: 'event-loop' },
      json: { type: 'boolean', default: false },
      keep: { type: 'boolean', default: false },
    },
  });
  const positive = (name: string, raw: string): number => {
    const value = Number(raw);
    if (!(value > 0)) throw new Error(`--${name} must be a positive number, got '${raw}'`);
    return value;
  };
  if (values.minutes !== undefined && values.seconds !== undefined) {
    throw new Error('give --minutes or --seconds, not both');
  }
  const durationMs =
    values.seconds !== undefined
      ? positive('seconds', values.seconds) * 1000
      : positive('minutes', values.minutes ?? '5') * 60_000;
  if (!(MODES as readonly string[]).includes(values.mode)) {
    throw new Error(`--mode must be one of ${MODES.join(', ')}, got '${values.mode}'`);
  }
  const kept = process.argv.slice(2).filter((arg) => arg !== '--json' && arg !== '--keep');
  return {
    durationMs,
    concurrency: Math.round(positive('concurrency', values.concurrency)),
    neverReadsEveryMs: Number(values['never-reads-every']) * 1000,
    mode: values.mode as Settings['mode'],
    json: values.json,
    keep: values.keep,
    command: ['npm run soak', ...(kept.length > 0 ? ['--', ...kept] : [])].join(' '),
  };
}

interface RssSample {
  /** Seconds since the workload began. */
  readonly seconds: number;
  readonly bytes: number;
}

interface MemoryVerdict {
  readonly warmupSeconds: number;
  readonly start: number;
  readonly middle: number;
  readonly end: number;
  readonly max: number;
  readonly limit: number;
  readonly plateaued: boolean;
  /** About ten samples across the run, for the curve. */
  readonly curve: readonly RssSample[];
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? 0;
}

/**
 * Start, middle and end are each the median of three samples (a reading
 * can land just before or after a garbage collection). Memory plateaued
 * when the end is at most 10% + 8 MiB above the middle: a leak grows with
 * the work done, and the second half does as much work as the first; the
 * slack absorbs V8 growing or shrinking its heap by a few MiB at a time.
 */
function plateauVerdict(samples: readonly RssSample[], durationMs: number): MemoryVerdict {
  const warmupSeconds = Math.min(30, Math.max(5, (0.15 * durationMs) / 1000));
  const settled = samples.filter((sample) => sample.seconds >= warmupSeconds);
  const around = (index: number): number =>
    median(settled.slice(Math.max(0, index - 1), index + 2).map((sample) => sample.bytes));
  const middleSeconds = (warmupSeconds + durationMs / 1000) / 2;
  let middleIndex = settled.findIndex((sample) => sample.seconds >= middleSeconds);
  if (middleIndex < 0) middleIndex = Math.floor(settled.length / 2);
  const start = around(1);
  const middle = around(middleIndex);
  const end = median(settled.slice(-3).map((sample) => sample.bytes));
  const limit = middle * PLATEAU_FACTOR + PLATEAU_SLACK_BYTES;
  const step = Math.max(1, Math.round(samples.length / 10));
  const curve = samples.filter((_, index) => index % step === 0 || index === samples.length - 1);
  return {
    warmupSeconds,
    start,
    middle,
    end,
    max: Math.max(...samples.map((sample) => sample.bytes)),
    limit,
    plateaued: settled.length >= 3 && end <= limit,
    curve,
  };
}

async function main(): Promise<void> {
  const settings = settingsFromArgs();
  const machine = describeMachine();
  const directory = mkdtempSync(join(tmpdir(), 'helo-soak-'));
  const dbPath = join(directory, 'soak.db');
  const cleanUp = (): void => {
    if (!settings.keep) rmSync(directory, { recursive: true, force: true });
  };
  process.once('SIGINT', () => {
    cleanUp();
    process.exit(130);
  });
  const note = (text: string): void => void process.stderr.write(`${text}\n`);
  const serverArgs = [
    'server',
    '--port',
    '0',
    '--store',
    `sqlite:${dbPath}`,
    '--mode',
    settings.mode,
    '--log-level',
    'warn',
    '--slow-reader-timeout',
    String(SLOW_READER_TIMEOUT_S),
  ];
  const server = await startChildServer({
    name: 'helo server',
    args: [HELO_BIN, ...serverArgs],
    env: CLEAN_ENV,
  });
  const ledger = new PayloadLedger();
  const counts = new SoakCounts();
  const context: SoakContext = {
    port: server.port,
    ledger,
    counts,
    maxLine: MAX_LINE,
    replyTimeoutMs: REPLY_TIMEOUT_MS,
    slowReaderTimeoutMs: SLOW_READER_TIMEOUT_S * 1000,
  };
  note(
    `soak: ${settings.durationMs / 1000} s, ${settings.concurrency} clients at a time, ` +
      `helo ${serverArgs.join(' ')} (pid ${server.pid})`,
  );

  const startedAt = performance.now();
  const elapsedSeconds = (): number => (performance.now() - startedAt) / 1000;
  const endAt = startedAt + settings.durationMs;
  const samples: RssSample[] = [];
  const sample = (): void => {
    samples.push({ seconds: elapsedSeconds(), bytes: treeRss(server.pid) });
  };
  sample();
  const sampler = setInterval(sample, SAMPLE_EVERY_MS);
  const progress = setInterval(() => {
    const done = SCENARIOS.reduce((sum, name) => sum + counts.conversations[name], 0);
    const rss = samples.at(-1)?.bytes ?? 0;
    note(
      `[${elapsedSeconds().toFixed(0)} s] ${formatCount(done)} conversations, ` +
        `${formatCount(counts.requests)} requests, ${formatCount(counts.acknowledged)} payloads ` +
        `acknowledged, ${counts.unexpected + counts.connectionErrors} violations; ` +
        `server RSS ${(rss / 2 ** 20).toFixed(1)} MiB`,
    );
  }, PROGRESS_EVERY_MS);

  const clients = Array.from({ length: settings.concurrency }, async () => {
    while (performance.now() < endAt) await runScenario(pickScenario(), context);
  });
  // A client that never reads, a few seconds in and then every 30 s.
  const neverReaders = (async () => {
    if (!(settings.neverReadsEveryMs > 0)) return;
    let nextAt = startedAt + Math.min(5_000, settings.durationMs / 4);
    while (nextAt < endAt) {
      await sleep(nextAt - performance.now());
      await neverReads(context);
      nextAt += settings.neverReadsEveryMs;
    }
  })();
  await Promise.all([...clients, neverReaders]);
  clearInterval(progress);
  clearInterval(sampler);
  sample();
  const seconds = elapsedSeconds();

  // Still serving at the end?
  const before = counts.unexpected + counts.connectionErrors;
  await runScenario('session', context);
  const healthyAtEnd = counts.unexpected + counts.connectionErrors === before;

  await server.stop();
  const ledgerVerdict = ledger.verifySqlite(dbPath);
  const memory = plateauVerdict(samples, settings.durationMs);
  const violations = listViolations(counts, ledgerVerdict, memory, healthyAtEnd);
  if (settings.json) {
    process.stdout.write(
      `${JSON.stringify(
        {
          machine,
          settings,
          seconds,
          counts: { ...counts, replies: Object.fromEntries(counts.replies) },
          store: ledgerVerdict,
          memory,
          violations,
        },
        null,
        2,
      )}\n`,
    );
  } else {
    process.stdout.write(
      `${report(settings, machine, seconds, counts, ledgerVerdict, memory, violations)}\n`,
    );
  }
  if (settings.keep) note(`kept ${dbPath}`);
  cleanUp();
  process.exitCode = violations.length === 0 ? 0 : 1;
}

function listViolations(
  counts: SoakCounts,
  store: LedgerVerdict,
  memory: MemoryVerdict,
  healthyAtEnd: boolean,
): string[] {
  const found: string[] = [];
  if (counts.unexpected > 0) found.push(`${counts.unexpected} unexpected replies`);
  if (counts.connectionErrors > 0) {
    found.push(`${counts.connectionErrors} connection errors besides the injected faults`);
  }
  if (!healthyAtEnd) found.push('the server did not serve a last session correctly');
  if (store.lost > 0) found.push(`${store.lost} acknowledged payloads missing from the store`);
  if (store.duplicated > 0) found.push(`${store.duplicated} payloads stored more than once`);
  if (store.storedButNever > 0) {
    found.push(`${store.storedButNever} cut-off or overlong payloads stored`);
  }
  if (store.foreign > 0) found.push(`${store.foreign} records the soak never sent as a payload`);
  if (!memory.plateaued) found.push('memory did not plateau');
  return found;
}

const mib = (bytes: number): string => `${(bytes / 2 ** 20).toFixed(1)} MiB`;

function report(
  settings: Settings,
  machine: MachineInfo,
  seconds: number,
  counts: SoakCounts,
  store: LedgerVerdict,
  memory: MemoryVerdict,
  violations: readonly string[],
): string {
  const row = (what: string, value: number | string, expected = ''): string[] => [
    what,
    typeof value === 'number' ? formatCount(value) : value,
    expected,
  ];
  const replyRows = [...counts.replies.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([code, n]) => row(`replies ${code}`, n));
  const table = markdownTable(
    ['', 'count', 'must be'],
    [
      ...SCENARIOS.map((name) => row(`conversations: ${name}`, counts.conversations[name])),
      row('conversations: never-reads', counts.conversations['never-reads']),
      row('requests sent', counts.requests),
      ...replyRows,
      row('unexpected replies', counts.unexpected, '0'),
      row('connection errors (not injected)', counts.connectionErrors, '0'),
      ...INJECTED_FAULTS.map((fault) => row(`injected: ${fault}`, counts.injected[fault])),
      row('payloads acknowledged (300 DRCV)', store.acknowledged),
      row('records in the store', store.records),
      row('acknowledged, stored exactly once', store.acknowledgedStoredOnce, 'all acknowledged'),
      row('acknowledged, missing', store.lost, '0'),
      row('stored twice or more', store.duplicated, '0'),
      row('cut off or overlong, yet stored', store.storedButNever, '0'),
      row(
        'sent then dropped, stored (at most once)',
        `${formatCount(store.maybeStored)} of ${formatCount(store.maybe)}`,
      ),
      row('records never sent as a payload', store.foreign, '0'),
    ],
    ['left', 'right', 'left'],
  );
  const curve = memory.curve
    .map((sample) => `${sample.seconds.toFixed(0)} s: ${mib(sample.bytes)}`)
    .join(', ');
  return [
    `## Soak (\`${settings.command}\`)`,
    '',
    ...machineLines(machine, loadAverage()),
    '',
    `${seconds.toFixed(0)} s of mixed workload, ${settings.concurrency} clients at a time, ` +
      `against \`helo server --store sqlite:… --mode ${settings.mode} --slow-reader-timeout ` +
      `${SLOW_READER_TIMEOUT_S}\`.`,
    '',
    table,
    '',
    `Server memory (VmRSS of its process tree, every ${SAMPLE_EVERY_MS / 1000} s): start ` +
      `(after ${memory.warmupSeconds.toFixed(0)} s of warm-up) ${mib(memory.start)}, middle ` +
      `${mib(memory.middle)}, end ${mib(memory.end)}, max ${mib(memory.max)}. ` +
      `Plateau: end ≤ middle × ${PLATEAU_FACTOR} + ${mib(PLATEAU_SLACK_BYTES)} = ${mib(memory.limit)}: ` +
      `${memory.plateaued ? 'yes' : 'NO'}.`,
    '',
    `Curve: ${curve}.`,
    '',
    violations.length === 0
      ? 'Verdict: PASS (no violation).'
      : `Verdict: FAIL: ${violations.join('; ')}.`,
    ...(counts.samples.length > 0
      ? ['', 'First violations:', ...counts.samples.map((s) => `- ${s}`)]
      : []),
  ].join('\n');
}

main().catch((error: unknown) => {
  process.stderr.write(`npm run soak: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
