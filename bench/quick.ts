/**
 * `npm run bench`: how close the event-loop helo server comes to the tuned
 * baseline server (src/loadgen/baseline-server.ts), measured with the load
 * generator of `helo bench` (src/loadgen, worker threads) in one run:
 *
 *   HELO round trips, 50 connections, pipeline 1 and pipeline 32
 *   inline DATA, 100-byte payloads, store memory: and durable SQLite
 *   whole sessions (connect, HELO, DATA, QUIT) per second
 *
 * Each figure is a ratio to the baseline measured in the same repetition
 * (and for durable DATA also to memory DATA), and the median over a few
 * repetitions: the machine is shared and noisy, so absolute numbers vary
 * more than ratios (stack.md). Every helo measurement gets a fresh server.
 *
 * Usage: npm run bench -- [--json] [--repetitions N] [--duration S]
 *          [--warmup S] [--connections N] [--threads T] [--server-arg ARG]...
 * (build first: npm run build, which npm install runs.)
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startBaselineServer } from '../src/loadgen/baseline.js';
import { type ChildServer, startChildServer } from '../src/loadgen/child-server.js';
import { errorTotal } from '../src/loadgen/load-counts.js';
import { runReport, throughputOf, type RunReport } from '../src/loadgen/report.js';
import { runLoad } from '../src/loadgen/run-load.js';
import { defaultThreadCount } from '../src/loadgen/thread-shares.js';
import { type Workload, workloadPlan } from '../src/loadgen/workloads.js';

const HELO_BIN = fileURLToPath(new URL('../../bin/helo', import.meta.url));
const PAYLOAD_BYTES = 100;

interface Scenario {
  readonly name: string;
  readonly workload: Workload;
  readonly pipeline: number;
  readonly store: 'memory' | 'sqlite';
  /** For context, not a test: the ratio helo should reach. */
  readonly target: string;
}

const SCENARIOS: readonly Scenario[] = [
  { name: 'HELO, pipeline 1', workload: 'helo', pipeline: 1, store: 'memory', target: '>= 0.85' },
  { name: 'HELO, pipeline 32', workload: 'helo', pipeline: 32, store: 'memory', target: '>= 0.85' },
  { name: 'DATA 100 B, memory:', workload: 'data', pipeline: 1, store: 'memory', target: '' },
  { name: 'DATA 100 B, SQLite', workload: 'data', pipeline: 1, store: 'sqlite', target: '' },
  { name: 'sessions', workload: 'session', pipeline: 1, store: 'memory', target: '>= 0.85' },
];

interface Settings {
  readonly repetitions: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly connections: number;
  readonly threads: number;
  readonly serverArgs: readonly string[];
}

interface ScenarioResult {
  readonly name: string;
  /** `requests/s` or `sessions/s`. */
  readonly unit: string;
  readonly helo: number[];
  readonly baseline: number[];
  /** helo / baseline, per repetition. */
  readonly ratios: number[];
  readonly heloMedian: number;
  readonly baselineMedian: number;
  readonly ratio: number;
  readonly target: string;
  /** Durable DATA only: its throughput over memory DATA's, per repetition and median. */
  readonly durableOverMemory?: { readonly ratios: number[]; readonly ratio: number };
  /** Errors and unexpected replies over every run of the scenario (should be 0). */
  readonly problems: number;
}

function settingsFromArgs(): Settings & { json: boolean } {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      repetitions: { type: 'string', default: '3' },
      duration: { type: 'string', default: '2' },
      warmup: { type: 'string', default: '0.5' },
      connections: { type: 'string', default: '50' },
      threads: { type: 'string' },
      'server-arg': { type: 'string', multiple: true, default: [] },
    },
  });
  const positive = (name: string, raw: string): number => {
    const value = Number(raw);
    if (!(value > 0)) throw new Error(`--${name} must be a positive number, got '${raw}'`);
    return value;
  };
  const connections = Math.round(positive('connections', values.connections));
  return {
    json: values.json,
    repetitions: Math.round(positive('repetitions', values.repetitions)),
    durationMs: positive('duration', values.duration) * 1000,
    warmupMs: Number(values.warmup) * 1000,
    connections,
    threads:
      values.threads === undefined
        ? defaultThreadCount('127.0.0.1', connections)
        : Math.round(positive('threads', values.threads)),
    serverArgs: values['server-arg'],
  };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function measure(
  port: number,
  scenario: Scenario,
  settings: Settings,
): Promise<{ throughput: number; problems: number }> {
  const plan = workloadPlan(scenario.workload, PAYLOAD_BYTES);
  const result = await runLoad({
    host: '127.0.0.1',
    port,
    plan,
    connections: settings.connections,
    maxInFlight: scenario.pipeline,
    threads: settings.threads,
    warmupMs: settings.warmupMs,
    durationMs: settings.durationMs,
    requests: null,
    ratePerSecond: null,
    timeoutMs: 10_000,
  });
  const report: RunReport = runReport(`tcp://127.0.0.1:${port}`, plan.kind, result);
  return {
    throughput: throughputOf(report),
    problems: errorTotal(result.measured) + result.measured.unexpected,
  };
}

async function main(): Promise<void> {
  const settings = settingsFromArgs();
  const directory = mkdtempSync(join(tmpdir(), 'helo-bench-'));
  const cleanUp = (): void => rmSync(directory, { recursive: true, force: true });
  process.once('SIGINT', () => {
    cleanUp();
    process.exit(130);
  });
  // Without HELO_* variables, so that the servers compared run with their defaults.
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('HELO_')),
  );
  let files = 0;
  const startHelo = (store: Scenario['store']): Promise<ChildServer> =>
    startChildServer({
      name: 'helo server',
      env,
      args: [
        HELO_BIN,
        'server',
        '--port',
        '0',
        '--log-level',
        'warn',
        '--store',
        store === 'memory' ? 'memory:' : `sqlite:${join(directory, `bench-${++files}.db`)}`,
        ...settings.serverArgs,
      ],
    });

  const runs = new Map(
    SCENARIOS.map((scenario) => [
      scenario.name,
      { helo: [] as number[], baseline: [] as number[], problems: 0 },
    ]),
  );
  const total = settings.repetitions * (SCENARIOS.length * 2 - 1);
  let done = 0;
  const note = (text: string): void => {
    if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K[${++done}/${total}] ${text}`);
  };

  const baseline = await startBaselineServer();
  try {
    for (let repetition = 0; repetition < settings.repetitions; repetition++) {
      for (const scenario of SCENARIOS) {
        const record = runs.get(scenario.name)!;
        // The baseline answers memory and durable DATA alike: measured once per repetition.
        const needsBaseline = scenario.store === 'memory';
        const measureBaseline = async (): Promise<void> => {
          if (!needsBaseline) return;
          note(`${scenario.name}: baseline`);
          const { throughput, problems } = await measure(baseline.port, scenario, settings);
          record.baseline.push(throughput);
          record.problems += problems;
        };
        const measureHelo = async (): Promise<void> => {
          note(`${scenario.name}: helo`);
          const server = await startHelo(scenario.store);
          try {
            const { throughput, problems } = await measure(server.port, scenario, settings);
            record.helo.push(throughput);
            record.problems += problems;
          } finally {
            await server.stop();
          }
        };
        // Alternate who goes first, so that neither always gets the warmer machine.
        if (repetition % 2 === 0) {
          await measureBaseline();
          await measureHelo();
        } else {
          await measureHelo();
          await measureBaseline();
        }
      }
    }
  } finally {
    await baseline.stop();
    cleanUp();
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  }

  const results = summarize(runs);
  if (settings.json) {
    const { repetitions, durationMs, warmupMs, connections, threads, serverArgs } = settings;
    process.stdout.write(
      `${JSON.stringify(
        {
          settings: {
            repetitions,
            durationSeconds: durationMs / 1000,
            warmupSeconds: warmupMs / 1000,
            connections,
            threads,
            serverArgs,
          },
          scenarios: results,
        },
        null,
        2,
      )}\n`,
    );
  } else {
    process.stdout.write(formatTable(results, settings));
  }
}

function summarize(
  runs: Map<string, { helo: number[]; baseline: number[]; problems: number }>,
): ScenarioResult[] {
  const memoryData = runs.get('DATA 100 B, memory:')!;
  const sqliteBaseline = memoryData.baseline;
  return SCENARIOS.map((scenario) => {
    const record = runs.get(scenario.name)!;
    const baseline = scenario.store === 'sqlite' ? sqliteBaseline : record.baseline;
    const ratios = record.helo.map((value, index) => value / baseline[index]!);
    const result: ScenarioResult = {
      name: scenario.name,
      unit: scenario.workload === 'session' ? 'sessions/s' : 'requests/s',
      helo: record.helo,
      baseline,
      ratios,
      heloMedian: median(record.helo),
      baselineMedian: median(baseline),
      ratio: median(ratios),
      target: scenario.target,
      problems: record.problems,
    };
    if (scenario.store !== 'sqlite') return result;
    const overMemory = record.helo.map((value, index) => value / memoryData.helo[index]!);
    return { ...result, durableOverMemory: { ratios: overMemory, ratio: median(overMemory) } };
  });
}

function formatTable(results: readonly ScenarioResult[], settings: Settings): string {
  const count = (value: number): string => Math.round(value).toLocaleString('en-US');
  const rows = [
    ['scenario', 'helo', 'baseline', 'helo/baseline', 'aim'],
    ...results.map((result) => [
      result.name,
      `${count(result.heloMedian)} ${result.unit}`,
      `${count(result.baselineMedian)} ${result.unit}`,
      result.ratio.toFixed(2),
      result.durableOverMemory
        ? `durable/memory ${result.durableOverMemory.ratio.toFixed(2)} (aim >= 0.5)`
        : result.target,
    ]),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const lines = rows.map((row) =>
    row
      .map((cell, column) =>
        column === 0 || column === row.length - 1
          ? cell.padEnd(widths[column]!)
          : cell.padStart(widths[column]!),
      )
      .join('   ')
      .trimEnd(),
  );
  const problems = results.filter((result) => result.problems > 0);
  return [
    `helo (event-loop${settings.serverArgs.length > 0 ? `, ${settings.serverArgs.join(' ')}` : ''}) ` +
      `vs the baseline server: median of ${settings.repetitions} repetitions of ` +
      `${settings.durationMs / 1000} s (after ${settings.warmupMs / 1000} s of warm-up), ` +
      `${settings.connections} connections, ${settings.threads} load thread${settings.threads === 1 ? '' : 's'}`,
    '',
    ...lines,
    '',
    ...(problems.length === 0
      ? ['No errors and no unexpected replies.']
      : problems.map(
          (result) => `warning: ${result.name}: ${result.problems} errors or unexpected replies`,
        )),
    '',
  ].join('\n');
}

main().catch((error: unknown) => {
  process.stderr.write(
    `npm run bench: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
