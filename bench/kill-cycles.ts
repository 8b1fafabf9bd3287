/**
 * `npm run kill-cycles`: SIGKILL the real server under load again and
 * again on one growing SQLite file, and check after every kill that each
 * payload answered `300 DRCV` is in the file, exactly once
 * (support/kill-cycles-lib.ts has the cycle itself). Exits 1 on any loss,
 * duplicate, 500 FAIL or unexpected reply.
 *
 * Usage: npm run kill-cycles -- [--cycles 20] [--mode event-loop|cluster]
 *          [--connections 4] [--pipeline 16] [--seed N] [--file PATH]
 * Without --file the database goes in a temporary directory, removed after.
 * (Build first: npm run build.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import {
  KILL_CYCLE_DEFAULTS,
  runKillCycles,
  type CycleResult,
  type KillCyclesReport,
  type KillMode,
} from '../support/kill-cycles-lib.js';
import { formatCount, markdownTable, type Align } from './markdown-table.js';

const MODES: readonly KillMode[] = ['event-loop', 'cluster'];

function wholeNumber(name: string, raw: string | undefined, fallback: number, min: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < min) {
    throw new Error(`--${name} must be a whole number >= ${min}, got '${raw}'`);
  }
  return value;
}

function megabytes(bytes: number): string {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

function cycleRow(result: CycleResult): string[] {
  return [
    String(result.cycle),
    `${result.killAfterMs} ms`,
    formatCount(result.acknowledged),
    formatCount(result.stored),
    formatCount(result.sent - result.acknowledged - result.failed),
    formatCount(result.storedUnacknowledged),
    String(result.lost),
    String(result.duplicated),
    String(result.failed + result.unexpected),
    megabytes(result.dbBytes),
  ];
}

const HEADER = [
  'cycle',
  'killed after',
  'acknowledged',
  'stored',
  'unanswered',
  'stored unanswered',
  'lost',
  'duplicated',
  'FAIL/other',
  'DB size',
];

function summary(report: KillCyclesReport, mode: KillMode): string {
  const rows = report.cycles.map(cycleRow);
  const unanswered = report.cycles.reduce(
    (total, result) => total + result.sent - result.acknowledged - result.failed,
    0,
  );
  const storedUnanswered = report.cycles.reduce(
    (total, result) => total + result.storedUnacknowledged,
    0,
  );
  rows.push([
    'total',
    '',
    formatCount(report.acknowledged),
    formatCount(report.stored),
    formatCount(unanswered),
    formatCount(storedUnanswered),
    String(report.lost),
    String(report.duplicated),
    String(report.failed + report.unexpected),
    megabytes(report.dbBytes),
  ]);
  const align = HEADER.map((_, column): Align => (column === 0 ? 'left' : 'right'));
  return [
    `${report.cycles.length} SIGKILL cycles, ${mode} mode, one growing SQLite file`,
    '',
    markdownTable(HEADER, rows, align),
    '',
    report.ok
      ? 'OK: every acknowledged payload is stored, none twice.'
      : 'FAILED: see lost / duplicated / FAIL/other above (and cycles that acknowledged nothing).',
    '',
  ].join('\n');
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      cycles: { type: 'string' },
      mode: { type: 'string', default: KILL_CYCLE_DEFAULTS.mode },
      connections: { type: 'string' },
      pipeline: { type: 'string' },
      seed: { type: 'string' },
      file: { type: 'string' },
    },
  });
  const mode = values.mode as KillMode;
  if (!MODES.includes(mode)) throw new Error(`--mode must be event-loop or cluster, got '${mode}'`);
  const seed = wholeNumber('seed', values.seed, Math.floor(Math.random() * 1e9), 0);
  const tempDir = values.file === undefined ? mkdtempSync(join(tmpdir(), 'helo-kill-')) : null;
  const file = values.file ?? join(tempDir!, 'helo.db');
  process.stdout.write(`seed ${seed} (repeat the kill times with --seed ${seed}); file ${file}\n`);
  try {
    const report = await runKillCycles({
      file,
      mode,
      seed,
      cycles: wholeNumber('cycles', values.cycles, KILL_CYCLE_DEFAULTS.cycles, 1),
      connections: wholeNumber(
        'connections',
        values.connections,
        KILL_CYCLE_DEFAULTS.connections,
        1,
      ),
      pipeline: wholeNumber('pipeline', values.pipeline, KILL_CYCLE_DEFAULTS.pipeline, 1),
      minKillMs: KILL_CYCLE_DEFAULTS.minKillMs,
      maxKillMs: KILL_CYCLE_DEFAULTS.maxKillMs,
      onCycle: (result) =>
        process.stdout.write(
          `cycle ${result.cycle}: killed after ${result.killAfterMs} ms, ` +
            `${result.acknowledged} acknowledged, ${result.stored} stored, ` +
            `${result.lost} lost, ${result.duplicated} duplicated, ${megabytes(result.dbBytes)}\n`,
        ),
    });
    process.stdout.write(`\n${summary(report, mode)}`);
    if (!report.ok) process.exitCode = 1;
  } finally {
    if (tempDir !== null) rmSync(tempDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(
    `npm run kill-cycles: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
