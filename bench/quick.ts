/**
 * `npm run bench`: helo at the defaults a user gets (`helo server`, its
 * default log level) against the tuned baseline server
 * (src/loadgen/baseline-server.ts), and its default durable store against
 * `memory:`, measured with the load generator of `helo bench` in one run:
 *
 *   W1  HELO round trips, 50 connections, 1 in flight each
 *   W2  HELO, 50 connections, 32 in flight each
 *   W3  inline DATA of 100 bytes, 50 connections   (baseline, memory:, SQLite)
 *   W4  whole sessions: connect, HELO, DATA hello, QUIT (baseline, memory:, SQLite)
 *
 * For W3 and W4 the helo servers also open `--http-port`, so that the mean
 * group-commit batch (`helo_commit_batch_size` sum / count from /metrics)
 * can be read after each load.
 *
 * Each figure is a ratio of two measurements of the same repetition, and
 * the median over the repetitions: the machine is shared and noisy, so
 * absolute numbers vary more than ratios. Within a repetition the servers
 * take turns in an order that rotates from one repetition to the next, so
 * none always gets the warmer (or the quieter) machine. Every helo
 * measurement gets a fresh server and a fresh database file.
 *
 * With 2 CPUs or more, and taskset installed, the servers run on one half of
 * the CPUs and the load generator on the other (bench/cpu-pinning.ts), so
 * they do not take each other's time. The generator's own CPU use is
 * measured (run-load.ts): at 90% of its CPUs or more it, not the server,
 * set the pace, and the report says which figures are lower bounds.
 *
 * `--lineload PATH` drives the same servers, in the same turns, with the
 * outside C load generator instead (../shared/tools/lineload: build it
 * there with make; it is an instrument beside the project, not a
 * dependency): the cross-check docs/PERFORMANCE.md reports. It is pinned like
 * helo's generator; the server's CPU time is then counted over the measured
 * seconds only, after lineload's warm-up.
 *
 * Usage: npm run bench -- [--quick] [--json] [--repetitions N] [--duration S]
 *          [--warmup S] [--connections N] [--threads T] [--pin auto|on|off]
 *          [--server-arg ARG]... [--lineload PATH]
 * (build first: npm run build, which npm install runs.)
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { startBaselineServer } from '../src/loadgen/baseline.js';
import { type ChildServer, startChildServer } from '../src/loadgen/child-server.js';
import { errorTotal } from '../src/loadgen/load-counts.js';
import { runReport, throughputOf } from '../src/loadgen/report.js';
import { GENERATOR_BOUND_SHARE, runLoad } from '../src/loadgen/run-load.js';
import { defaultThreadCount } from '../src/loadgen/thread-shares.js';
import { type Workload, workloadPlan } from '../src/loadgen/workloads.js';
import {
  type CpuPlan,
  type PinSetting,
  pinLoadGenerator,
  planCpus,
  spawnPinned,
} from './cpu-pinning.js';
import { describeMachine, loadAverage, type MachineInfo } from './machine.js';
import { processTree } from './process-tree-rss.js';

const HELO_BIN = fileURLToPath(new URL('../../bin/helo', import.meta.url));

type Target = 'baseline' | 'memory' | 'sqlite';

interface Scenario {
  readonly id: string;
  readonly name: string;
  readonly workload: Workload;
  readonly payloadBytes: number;
  readonly pipeline: number;
  readonly targets: readonly Target[];
  /** The aims of docs/BENCH.md, for context (these are benchmarks, not tests). */
  readonly aimOverBaseline: number;
  readonly aimDurableOverMemory: number | null;
}

const SCENARIOS: readonly Scenario[] = [
  {
    id: 'W1',
    name: 'HELO round trips',
    workload: 'helo',
    payloadBytes: 0,
    pipeline: 1,
    targets: ['baseline', 'memory'],
    aimOverBaseline: 0.9,
    aimDurableOverMemory: null,
  },
  {
    id: 'W2',
    name: 'HELO, 32 in flight',
    workload: 'helo',
    payloadBytes: 0,
    pipeline: 32,
    targets: ['baseline', 'memory'],
    aimOverBaseline: 0.9,
    aimDurableOverMemory: null,
  },
  {
    id: 'W3',
    name: 'inline DATA, 100 B',
    workload: 'data',
    payloadBytes: 100,
    pipeline: 1,
    targets: ['baseline', 'memory', 'sqlite'],
    aimOverBaseline: 0.9,
    aimDurableOverMemory: 0.85,
  },
  {
    id: 'W4',
    name: 'sessions (HELO, DATA, QUIT)',
    workload: 'session',
    // `DATA hello`: five bytes, as in the issue's and lineload's W4.
    payloadBytes: 5,
    pipeline: 1,
    targets: ['baseline', 'memory', 'sqlite'],
    aimOverBaseline: 0.9,
    aimDurableOverMemory: 0.8,
  },
];

interface Settings {
  readonly json: boolean;
  readonly repetitions: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly connections: number;
  readonly threads: number;
  readonly pin: PinSetting;
  readonly serverArgs: readonly string[];
  /** The lineload program, when it (not helo's generator) drives the load. */
  readonly lineload: string | null;
}

/** One load against one server. */
interface Measurement {
  readonly throughput: number;
  readonly problems: number;
  /** The generator's CPU use while measuring, 0..1 of the CPUs its threads could use. */
  readonly generatorCpu: number;
  /** The server's (process tree's) CPU use over the load, in CPUs (1 = one CPU busy). */
  readonly serverCpus: number | null;
  /**
   * The server's CPU time per request (W1-W3) or session (W4), in microseconds,
   * over the whole load (warm-up included). Unlike throughput, this hardly
   * changes when other programs take CPU time: the steadier figure on a
   * shared machine.
   */
  readonly serverCpuUsPerUnit: number | null;
  /** helo_commit_batch_size over the server's life (W3, W4), or null. */
  readonly batch: { readonly sum: number; readonly count: number } | null;
}

interface TargetResult {
  readonly runs: Measurement[];
  readonly median: number;
  readonly generatorCpuMedian: number;
  readonly serverCpusMedian: number | null;
  readonly serverCpuUsPerUnitMedian: number | null;
  /** Mean records per group commit over every run (helo only, W3 and W4). */
  readonly meanBatch: number | null;
}

interface ScenarioResult {
  readonly id: string;
  readonly name: string;
  readonly unit: 'requests/s' | 'sessions/s';
  readonly pipeline: number;
  readonly targets: Partial<Record<Target, TargetResult>>;
  /** helo (memory:) / baseline: per repetition, and the median. */
  readonly overBaseline: { readonly ratios: number[]; readonly median: number };
  /**
   * Baseline CPU per unit / helo's (memory:), per repetition and the median:
   * the ratio helo/baseline would have if both had their CPU to themselves
   * (null without /proc).
   */
  readonly cpuOverBaseline: { readonly ratios: number[]; readonly median: number } | null;
  /** helo SQLite / helo memory: (W3, W4). */
  readonly durableOverMemory: { readonly ratios: number[]; readonly median: number } | null;
  readonly aimOverBaseline: number;
  readonly aimDurableOverMemory: number | null;
  readonly problems: number;
}

function settingsFromArgs(): Settings {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      quick: { type: 'boolean', default: false },
      repetitions: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string', default: '50' },
      threads: { type: 'string' },
      pin: { type: 'string', default: 'auto' },
      'server-arg': { type: 'string', multiple: true, default: [] },
      lineload: { type: 'string' },
    },
  });
  if (values.lineload !== undefined && !existsSync(values.lineload)) {
    throw new Error(
      `--lineload: no program at ${values.lineload} (make -C ../shared/tools/lineload)`,
    );
  }
  const positive = (name: string, raw: string): number => {
    const value = Number(raw);
    if (!(value > 0)) throw new Error(`--${name} must be a positive number, got '${raw}'`);
    return value;
  };
  if (!['auto', 'on', 'off'].includes(values.pin)) {
    throw new Error(`--pin must be auto, on or off, got '${values.pin}'`);
  }
  const quick = values.quick;
  const connections = Math.round(positive('connections', values.connections));
  return {
    json: values.json,
    repetitions: Math.round(positive('repetitions', values.repetitions ?? (quick ? '1' : '3'))),
    durationMs: positive('duration', values.duration ?? (quick ? '1' : '2')) * 1000,
    warmupMs: Number(values.warmup ?? (quick ? '0.3' : '0.5')) * 1000,
    connections,
    threads:
      values.threads === undefined
        ? defaultThreadCount('127.0.0.1', connections)
        : Math.round(positive('threads', values.threads)),
    pin: values.pin as PinSetting,
    serverArgs: values['server-arg'],
    lineload: values.lineload ?? null,
  };
}

/**
 * `auto` pins whenever there are 2 CPUs or more, unless the server runs
 * several processes (cluster, fork), which pinning would squeeze onto half
 * the CPUs: then the rule of bench/cpu-pinning.ts (from 4 CPUs) applies.
 */
function cpuPlan(settings: Settings): CpuPlan {
  const modeIndex = settings.serverArgs.indexOf('--mode');
  const mode = modeIndex === -1 ? 'event-loop' : settings.serverArgs[modeIndex + 1];
  const isOneProcess = mode === 'event-loop' || mode === 'sequential';
  return planCpus(settings.pin === 'auto' && isOneProcess ? 'on' : settings.pin);
}

function median(values: readonly number[]): number {
  if (values.length === 0) return 0;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

const CLOCK_TICKS_PER_SECOND = 100;

/** CPU seconds used so far by `pid` and its descendants (Linux /proc), or null elsewhere. */
function treeCpuSeconds(pid: number): number | null {
  let ticks = 0;
  try {
    for (const member of processTree(pid)) {
      try {
        const stat = readFileSync(`/proc/${member}/stat`, 'utf8');
        const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
        // utime and stime: fields 14 and 15 of stat(5), 12 and 13 after the name.
        ticks += Number(fields[11]) + Number(fields[12]);
      } catch {
        // Exited meanwhile.
      }
    }
  } catch {
    return null;
  }
  return ticks / CLOCK_TICKS_PER_SECOND;
}

/** `helo_commit_batch_size` sum and count from a helo server's /metrics. */
async function commitBatches(httpPort: number): Promise<{ sum: number; count: number } | null> {
  try {
    const response = await fetch(`http://127.0.0.1:${httpPort}/metrics`);
    const text = await response.text();
    const sum = /^helo_commit_batch_size_sum(?:\{[^}]*\})? (\S+)$/m.exec(text)?.[1];
    const count = /^helo_commit_batch_size_count(?:\{[^}]*\})? (\S+)$/m.exec(text)?.[1];
    if (sum === undefined || count === undefined) return null;
    return { sum: Number(sum), count: Number(count) };
  } catch {
    return null;
  }
}

/** What lineload prints at the end of a run (one JSON line; the fields used here). */
interface LineloadResult {
  readonly rps: number;
  readonly done: number;
  readonly errors: number;
  readonly client_cpu: number;
}

/** lineload's request and expected reply for a scenario (its escapes: `\x20` is a space). */
function lineloadArgs(scenario: Scenario): string[] {
  if (scenario.workload === 'session') {
    const payload = 'x'.repeat(scenario.payloadBytes);
    return [
      '-s',
      '-r',
      `HELO\\r\\nDATA\\x20${payload}\\r\\nQUIT\\r\\n`,
      '-e',
      '100\\x20OK\\r\\n300\\x20DRCV\\r\\n200\\x20BYE\\r\\n',
    ];
  }
  const pipeline = ['-P', String(scenario.pipeline)];
  if (scenario.workload === 'data') {
    const payload = 'x'.repeat(scenario.payloadBytes);
    return [...pipeline, '-r', `DATA\\x20${payload}\\r\\n`, '-e', '300\\x20DRCV\\r\\n'];
  }
  return [...pipeline, '-r', 'HELO\\r\\n', '-e', '100\\x20OK\\r\\n'];
}

/** One load from lineload, pinned like helo's generator; server CPU over the measured seconds. */
async function measureWithLineload(
  lineload: string,
  server: ChildServer,
  scenario: Scenario,
  settings: Settings,
  httpPort: number | null,
): Promise<Measurement> {
  const seconds = (ms: number): string => String(Math.max(ms / 1000, 0));
  const args = [
    '-p',
    String(server.port),
    '-c',
    String(settings.connections),
    '-d',
    seconds(settings.durationMs),
    '-w',
    seconds(settings.warmupMs),
    ...lineloadArgs(scenario),
  ];
  // This process already runs on the generator's CPUs (pinLoadGenerator): lineload inherits them.
  const child = spawn(lineload, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (output += text));
  const exited = once(child, 'exit');
  await new Promise((resolve) => setTimeout(resolve, settings.warmupMs));
  const cpuBefore = treeCpuSeconds(server.pid);
  const startedAt = performance.now();
  const [code] = (await exited) as [number | null];
  const wallSeconds = (performance.now() - startedAt) / 1000;
  const cpuAfter = treeCpuSeconds(server.pid);
  const last = output.trim().split('\n').at(-1) ?? '';
  if (code !== 0 || !last.startsWith('{')) {
    throw new Error(`lineload exited with ${code}: ${output.trim() || '(nothing printed)'}`);
  }
  const result = JSON.parse(last) as LineloadResult;
  const serverCpuSeconds = cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore;
  return {
    throughput: result.rps,
    problems: result.errors,
    generatorCpu: result.client_cpu,
    serverCpus:
      serverCpuSeconds === null ? null : Math.round((serverCpuSeconds / wallSeconds) * 100) / 100,
    serverCpuUsPerUnit:
      serverCpuSeconds === null || result.done === 0
        ? null
        : Math.round((serverCpuSeconds / result.done) * 1e7) / 10,
    batch: httpPort === null ? null : await commitBatches(httpPort),
  };
}

async function measure(
  server: ChildServer,
  scenario: Scenario,
  settings: Settings,
  httpPort: number | null,
): Promise<Measurement> {
  if (settings.lineload !== null) {
    return measureWithLineload(settings.lineload, server, scenario, settings, httpPort);
  }
  const plan = workloadPlan(scenario.workload, Math.max(1, scenario.payloadBytes));
  const cpuBefore = treeCpuSeconds(server.pid);
  const startedAt = performance.now();
  const result = await runLoad({
    host: '127.0.0.1',
    port: server.port,
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
  const wallSeconds = (performance.now() - startedAt) / 1000;
  const cpuAfter = treeCpuSeconds(server.pid);
  const report = runReport(`tcp://127.0.0.1:${server.port}`, plan.kind, result);
  const units =
    plan.kind === 'session'
      ? result.measured.sessions + result.warmup.sessions
      : result.measured.replies + result.warmup.replies;
  const serverCpuSeconds = cpuBefore === null || cpuAfter === null ? null : cpuAfter - cpuBefore;
  return {
    throughput: throughputOf(report),
    problems: errorTotal(result.measured) + result.measured.unexpected,
    generatorCpu: result.generatorCpu.share,
    serverCpus:
      cpuBefore === null || cpuAfter === null
        ? null
        : Math.round(((cpuAfter - cpuBefore) / wallSeconds) * 100) / 100,
    serverCpuUsPerUnit:
      serverCpuSeconds === null || units === 0
        ? null
        : Math.round((serverCpuSeconds / units) * 1e7) / 10,
    batch: httpPort === null ? null : await commitBatches(httpPort),
  };
}

async function main(): Promise<void> {
  const settings = settingsFromArgs();
  const machine = describeMachine();
  const pinning = cpuPlan(settings);
  pinLoadGenerator(pinning);
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
  /** A fresh `helo server` at its defaults (log level included); W3 and W4 also open /metrics. */
  const startHelo = async (
    store: 'memory' | 'sqlite',
    withMetrics: boolean,
  ): Promise<{ server: ChildServer; httpPort: number | null }> => {
    const server = await spawnPinned(pinning, () =>
      startChildServer({
        name: 'helo server',
        env,
        args: [
          HELO_BIN,
          'server',
          '--port',
          '0',
          ...(withMetrics ? ['--http-port', '0'] : []),
          '--store',
          store === 'memory' ? 'memory:' : `sqlite:${join(directory, `bench-${++files}.db`)}`,
          ...settings.serverArgs,
        ],
      }),
    );
    if (!withMetrics) return { server, httpPort: null };
    try {
      const match = await server.waitForOutput(/dashboard on http:\/\/[^\s]*:(\d+)\//);
      return { server, httpPort: Number(match[1]) };
    } catch (error) {
      await server.stop();
      throw error;
    }
  };

  const runs = new Map(
    SCENARIOS.map((scenario) => [
      scenario.id,
      new Map<Target, Measurement[]>(scenario.targets.map((target) => [target, []])),
    ]),
  );
  const total =
    settings.repetitions * SCENARIOS.reduce((sum, scenario) => sum + scenario.targets.length, 0);
  let done = 0;
  const note = (text: string): void => {
    if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K[${++done}/${total}] ${text}`);
  };
  const loadAtStart = loadAverage();
  const startedAt = Date.now();

  const baseline = await spawnPinned(pinning, () => startBaselineServer());
  try {
    for (let repetition = 0; repetition < settings.repetitions; repetition++) {
      for (const scenario of SCENARIOS) {
        const withMetrics = scenario.targets.includes('sqlite');
        // The order rotates with the repetition: A B C, B C A, C A B, ...
        const count = scenario.targets.length;
        const order = scenario.targets.map(
          (_, index) => scenario.targets[(index + repetition) % count]!,
        );
        for (const target of order) {
          note(`${scenario.id} ${scenario.name}: ${target}`);
          let measurement: Measurement;
          if (target === 'baseline') {
            measurement = await measure(baseline, scenario, settings, null);
          } else {
            const { server, httpPort } = await startHelo(target, withMetrics);
            try {
              measurement = await measure(server, scenario, settings, httpPort);
            } finally {
              await server.stop();
            }
          }
          runs.get(scenario.id)!.get(target)!.push(measurement);
        }
      }
    }
  } finally {
    await baseline.stop();
    cleanUp();
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  }

  const results = summarize(runs);
  const seconds = Math.round((Date.now() - startedAt) / 1000);
  if (settings.json) {
    const { repetitions, durationMs, warmupMs, connections, threads, serverArgs } = settings;
    process.stdout.write(
      `${JSON.stringify(
        {
          machine,
          loadAverageAtEnd: loadAverage(),
          pinning: pinning.description,
          settings: {
            repetitions,
            durationSeconds: durationMs / 1000,
            warmupSeconds: warmupMs / 1000,
            connections,
            threads,
            serverArgs,
          },
          totalSeconds: seconds,
          scenarios: results,
          warnings: warnings(results),
        },
        null,
        2,
      )}\n`,
    );
  } else {
    process.stdout.write(
      formatTable(results, settings, { machine, pinning, loadAtStart, seconds }),
    );
  }
}

function targetResult(runs: Measurement[]): TargetResult {
  const batches = runs.flatMap((run) => (run.batch === null ? [] : [run.batch]));
  const sum = batches.reduce((total, batch) => total + batch.sum, 0);
  const count = batches.reduce((total, batch) => total + batch.count, 0);
  const serverCpus = runs.flatMap((run) => (run.serverCpus === null ? [] : [run.serverCpus]));
  const perUnit = runs.flatMap((run) =>
    run.serverCpuUsPerUnit === null ? [] : [run.serverCpuUsPerUnit],
  );
  return {
    runs,
    median: median(runs.map((run) => run.throughput)),
    generatorCpuMedian: median(runs.map((run) => run.generatorCpu)),
    serverCpusMedian: serverCpus.length === 0 ? null : median(serverCpus),
    serverCpuUsPerUnitMedian: perUnit.length === 0 ? null : median(perUnit),
    meanBatch: count === 0 ? null : Math.round((sum / count) * 10) / 10,
  };
}

function ratiosOf(
  top: readonly Measurement[],
  bottom: readonly Measurement[],
): { ratios: number[]; median: number } {
  const ratios = top.map(
    (run, index) => Math.round((run.throughput / bottom[index]!.throughput) * 1000) / 1000,
  );
  return { ratios, median: median(ratios) };
}

/** top's CPU per unit / bottom's, per repetition (a cost ratio, so upside down). */
function cpuRatios(
  top: readonly Measurement[],
  bottom: readonly Measurement[],
): { ratios: number[]; median: number } | null {
  const ratios: number[] = [];
  for (const [index, run] of top.entries()) {
    const other = bottom[index]!.serverCpuUsPerUnit;
    if (run.serverCpuUsPerUnit === null || other === null || other === 0) return null;
    ratios.push(Math.round((run.serverCpuUsPerUnit / other) * 1000) / 1000);
  }
  return { ratios, median: median(ratios) };
}

function summarize(runs: Map<string, Map<Target, Measurement[]>>): ScenarioResult[] {
  return SCENARIOS.map((scenario) => {
    const byTarget = runs.get(scenario.id)!;
    const targets: Partial<Record<Target, TargetResult>> = {};
    for (const [target, measurements] of byTarget) targets[target] = targetResult(measurements);
    const memory = byTarget.get('memory')!;
    const sqlite = byTarget.get('sqlite');
    return {
      id: scenario.id,
      name: scenario.name,
      unit: scenario.workload === 'session' ? 'sessions/s' : 'requests/s',
      pipeline: scenario.pipeline,
      targets,
      overBaseline: ratiosOf(memory, byTarget.get('baseline')!),
      cpuOverBaseline: cpuRatios(byTarget.get('baseline')!, memory),
      durableOverMemory: sqlite === undefined ? null : ratiosOf(sqlite, memory),
      aimOverBaseline: scenario.aimOverBaseline,
      aimDurableOverMemory: scenario.aimDurableOverMemory,
      problems: [...byTarget.values()].flat().reduce((sum, run) => sum + run.problems, 0),
    };
  });
}

/** What the reader must know to trust the figures: generator-bound runs, errors. */
function warnings(results: readonly ScenarioResult[]): string[] {
  const lines: string[] = [];
  for (const result of results) {
    for (const [target, outcome] of Object.entries(result.targets)) {
      if (outcome.generatorCpuMedian < GENERATOR_BOUND_SHARE) continue;
      const who = target === 'baseline' ? 'the baseline' : `helo (${target})`;
      const consequence =
        target === 'baseline'
          ? "so the baseline's figure is a lower bound and helo/baseline an upper bound"
          : `so helo's figure is a lower bound`;
      lines.push(
        `warning: ${result.id}, ${who}: the load generator used ` +
          `${Math.round(outcome.generatorCpuMedian * 100)}% of its CPU (median): it may be the ` +
          `bottleneck, ${consequence}.`,
      );
    }
    if (result.problems > 0) {
      lines.push(`warning: ${result.id}: ${result.problems} errors or unexpected replies`);
    }
  }
  return lines;
}

function formatTable(
  results: readonly ScenarioResult[],
  settings: Settings,
  context: {
    machine: MachineInfo;
    pinning: CpuPlan;
    loadAtStart: number;
    seconds: number;
  },
): string {
  const count = (value: number): string => Math.round(value).toLocaleString('en-US');
  const percent = (share: number): string => `${Math.round(share * 100)}%`;
  const cpus = (outcome: TargetResult | undefined): string =>
    outcome === undefined
      ? ''
      : `${percent(outcome.generatorCpuMedian)}/` +
        (outcome.serverCpusMedian === null ? '-' : outcome.serverCpusMedian.toFixed(2));
  const rows = [
    [
      '',
      'workload',
      'baseline',
      'helo memory:',
      'helo SQLite',
      'helo/baseline',
      'SQLite/memory',
      'batch',
      'CPU µs/unit (base, mem, SQLite)',
      'by CPU',
      'gen CPU/server CPUs (base, mem, SQLite)',
    ],
    ...results.map((result) => {
      const { baseline, memory, sqlite } = result.targets;
      return [
        result.id,
        result.name,
        `${count(baseline!.median)}`,
        `${count(memory!.median)}`,
        sqlite === undefined ? '' : count(sqlite.median),
        `${result.overBaseline.median.toFixed(2)} (>= ${result.aimOverBaseline.toFixed(2)})`,
        result.durableOverMemory === null
          ? ''
          : `${result.durableOverMemory.median.toFixed(2)} (>= ${result.aimDurableOverMemory!.toFixed(2)})`,
        sqlite?.meanBatch == null ? '' : sqlite.meanBatch.toFixed(1),
        [baseline, memory, sqlite]
          .flatMap((outcome) =>
            outcome === undefined ? [] : [outcome.serverCpuUsPerUnitMedian?.toFixed(1) ?? '-'],
          )
          .join(', '),
        result.cpuOverBaseline === null ? '-' : result.cpuOverBaseline.median.toFixed(2),
        [baseline, memory, sqlite].flatMap((outcome) => cpus(outcome) || []).join(', '),
      ];
    }),
  ];
  const widths = rows[0]!.map((_, column) => Math.max(...rows.map((row) => row[column]!.length)));
  const lines = rows.map((row) =>
    row
      .map((cell, column) =>
        column <= 1 || column === row.length - 1
          ? cell.padEnd(widths[column]!)
          : cell.padStart(widths[column]!),
      )
      .join('  ')
      .trimEnd(),
  );
  const { machine, pinning } = context;
  const problems = warnings(results);
  // Neither side uses its CPU fully when other programs take it: say so, the figures are noisy.
  if (context.loadAtStart >= machine.cpus / 2) {
    problems.push(
      `note: the load average was ${context.loadAtStart} on ${machine.cpus} CPUs at the start: ` +
        'other work competed for the CPUs, so absolute figures are low and ratios noisy.',
    );
  }
  return [
    `helo server at its defaults${settings.serverArgs.length > 0 ? ` + ${settings.serverArgs.join(' ')}` : ''} ` +
      `vs the baseline server, and SQLite (the default store) vs memory:`,
    `median of ${settings.repetitions} repetition${settings.repetitions === 1 ? '' : 's'} of ` +
      `${settings.durationMs / 1000} s (after ${settings.warmupMs / 1000} s of warm-up), ` +
      `${settings.connections} connections, ` +
      (settings.lineload === null
        ? `${settings.threads} load thread${settings.threads === 1 ? '' : 's'}`
        : `load from lineload (${settings.lineload})`) +
      '; ratios per repetition, then their median',
    `${machine.cpuModel}, ${machine.cpus} CPUs; helo ${machine.commit ?? 'commit unknown'}; ` +
      `load average ${context.loadAtStart} -> ${loadAverage()}; ${context.seconds} s in all`,
    pinning.description,
    '',
    ...lines,
    '',
    'Throughput in requests/s (W1-W3) and sessions/s (W4); aims in parentheses. batch: mean',
    'records per SQLite group commit (helo_commit_batch_size). CPU µs/unit: server CPU time',
    `per request (W4: per session), ${settings.lineload === null ? 'warm-up included' : 'measured seconds only'}; by CPU: baseline µs / helo µs, what`,
    'helo/baseline would be with a CPU each to themselves (steadier on a busy machine).',
    "Last column: the load generator's CPU use (of its CPUs) / the server's (in CPUs), medians.",
    '',
    ...(problems.length === 0
      ? ['No errors, no unexpected replies, and the load generator was never the bottleneck.']
      : problems),
    '',
  ].join('\n');
}

main().catch((error: unknown) => {
  process.stderr.write(
    `npm run bench: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
