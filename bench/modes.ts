/**
 * `npm run bench:modes`: the lab's lesson in numbers. Every concurrency
 * model of helo (`--mode event-loop|sequential|fork|cluster|threads`, the
 * cluster with 2 workers, threads with 2 threads) against 1, 10 and 100 clients, with no work, with
 * I/O-bound work (`--work-ms 10`) and with CPU-bound work (`--work-cpu-ms
 * 2`), each cell against a fresh `helo server --store memory:` child
 * process, measured with the load generator of `helo bench` (src/loadgen,
 * worker threads).
 *
 * The grid uses the `session` workload (connect, HELO, DATA, QUIT, then
 * reconnect): that is what makes fork pay a process start per connection
 * and sequential serve one session at a time. Then the targets: cluster
 * and threads over event loop on CPU-bound work, and event loop against cluster on
 * I/O-bound work, with steady connections (`helo` workload, pipeline 1),
 * each the median of a few alternating repetitions.
 *
 * Writes its section of docs/benchmarks.md and docs/benchmarks.svg.
 *
 * Usage: npm run bench:modes -- [--quick] [--duration S] [--warmup S]
 *          [--repetitions N] [--timeout S] [--pin auto|on|off] [--json] [--no-docs]
 *        npm run bench:modes -- --from RUN.json   (re-render an earlier --json run)
 * (build first: npm run build, which npm install runs.)
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type ChildServer, startChildServer } from '../src/loadgen/child-server.js';
import { errorTotal } from '../src/loadgen/load-counts.js';
import { runReport } from '../src/loadgen/report.js';
import { runLoad } from '../src/loadgen/run-load.js';
import { defaultThreadCount } from '../src/loadgen/thread-shares.js';
import { type Workload, workloadPlan } from '../src/loadgen/workloads.js';
import { writeSection } from './benchmarks-doc.js';
import { connectionsPerProcess } from './connection-spread.js';
import {
  type CpuPlan,
  type PinSetting,
  pinLoadGenerator,
  planCpus,
  spawnPinned,
} from './cpu-pinning.js';
import { describeMachine, loadAverage, machineLines, type MachineInfo } from './machine.js';
import { formatCount, formatMs, markdownTable } from './markdown-table.js';
import { renderModesSvg } from './plot.js';

const HELO_BIN = fileURLToPath(new URL('../../bin/helo', import.meta.url));
const SVG_PATH = fileURLToPath(new URL('../../docs/benchmarks.svg', import.meta.url));
const HOST = '127.0.0.1';
const PAYLOAD_BYTES = 100;
const CLUSTER_WORKERS = 2;
const THREADS = 2;

const MODES = ['event-loop', 'sequential', 'fork', 'cluster', 'threads'] as const;
type Mode = (typeof MODES)[number];
const CLIENTS = [1, 10, 100] as const;

interface Work {
  readonly key: 'none' | 'io' | 'cpu';
  /** The panel title and table heading. */
  readonly label: string;
  readonly args: readonly string[];
}
const WORKS: readonly Work[] = [
  { key: 'none', label: 'no work', args: [] },
  { key: 'io', label: 'I/O-bound: --work-ms 10', args: ['--work-ms', '10'] },
  { key: 'cpu', label: 'CPU-bound: --work-cpu-ms 2', args: ['--work-cpu-ms', '2'] },
];

interface Target {
  readonly name: string;
  readonly work: Work;
  readonly clients: number;
  /** The ratio is numerator / denominator, requests/s. */
  readonly numerator: Mode;
  readonly denominator: Mode;
  /** For context, not a test. */
  readonly aim: string;
  readonly aimMin: number | null;
  /** `helo` (steady connections, requests/s) unless said; `session` compares sessions/s. */
  readonly workload?: Workload;
}
const TARGETS: readonly Target[] = [
  {
    name: 'CPU-bound, 10 clients',
    work: WORKS[2]!,
    clients: 10,
    numerator: 'cluster',
    denominator: 'event-loop',
    aim: '>= 1.6',
    aimMin: 1.6,
  },
  {
    name: 'CPU-bound, 10 clients (threads)',
    work: WORKS[2]!,
    clients: 10,
    numerator: 'threads',
    denominator: 'event-loop',
    aim: '>= 1.6',
    aimMin: 1.6,
  },
  {
    // W4 of docs/BENCH.md: what the cluster pays per connection (accept, slots, the store over IPC).
    name: 'sessions, 50 clients',
    work: { key: 'none', label: 'no work, whole sessions (W4)', args: [] },
    clients: 50,
    numerator: 'cluster',
    denominator: 'event-loop',
    aim: '>= 0.9',
    aimMin: 0.9,
    workload: 'session',
  },
  {
    name: 'I/O-bound, 10 clients',
    work: WORKS[1]!,
    clients: 10,
    numerator: 'event-loop',
    denominator: 'cluster',
    aim: 'about 1: one process is enough',
    aimMin: null,
  },
  {
    name: 'I/O-bound, 100 clients',
    work: WORKS[1]!,
    clients: 100,
    numerator: 'event-loop',
    denominator: 'cluster',
    aim: 'about 1: one process is enough',
    aimMin: null,
  },
];

interface Settings {
  readonly warmupMs: number;
  readonly durationMs: number;
  readonly repetitions: number;
  readonly timeoutMs: number;
  readonly pin: PinSetting;
  readonly json: boolean;
  readonly docs: boolean;
  readonly command: string;
  /** Re-render the report, the doc and the plot from an earlier --json output; measure nothing. */
  readonly from: string | null;
}

/** Everything one run measured: what --json prints, and what --from reads back. */
interface Run {
  readonly machine: MachineInfo;
  readonly settings: Settings;
  readonly pinning: CpuPlan;
  readonly totalSeconds: number;
  readonly loadAtEnd: number;
  readonly cells: readonly Cell[];
  readonly targets: readonly TargetResult[];
}

/** One cell of the grid: a mode, a number of clients, a kind of work; session workload. */
interface Cell {
  readonly work: Work['key'];
  readonly mode: Mode;
  readonly clients: number;
  /** Sessions started in the measured window, per second of it (see sessionsPerSecond()). */
  readonly sessionsPerSecond: number;
  /** What `helo bench` would print: the same sessions over the window plus the drain. */
  readonly reportedSessionsPerSecond: number;
  readonly sessions: number;
  /** Session latency, connect to last reply, in ms; null when no session completed. */
  readonly p50Ms: number | null;
  readonly p99Ms: number | null;
  /** Errors by kind, plus unexpected replies and unanswered requests; all should be 0. */
  readonly errors: Readonly<Record<string, number>>;
  readonly errorCount: number;
  /** The whole cell, server start and drain included. */
  readonly wallSeconds: number;
  /** Why the cell has no figures (the server did not start), else null. */
  readonly failure: string | null;
}

interface TargetResult {
  readonly name: string;
  readonly work: string;
  readonly clients: number;
  readonly numerator: Mode;
  readonly denominator: Mode;
  /** Requests/s per repetition. */
  readonly numeratorRuns: number[];
  readonly denominatorRuns: number[];
  readonly ratios: number[];
  readonly ratio: number;
  readonly numeratorMedian: number;
  readonly denominatorMedian: number;
  /** Median request latency p50, per mode, ms. */
  readonly numeratorP50Ms: number;
  readonly denominatorP50Ms: number;
  readonly aim: string;
  readonly met: boolean | null;
  readonly errorCount: number;
  /** Cluster runs: connections per worker during the measurement, per repetition (null: unknown). */
  readonly clusterSpreads: (number[] | null)[];
}

function settingsFromArgs(): Settings {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      repetitions: { type: 'string' },
      timeout: { type: 'string', default: '30' },
      pin: { type: 'string', default: 'auto' },
      json: { type: 'boolean', default: false },
      'no-docs': { type: 'boolean', default: false },
      from: { type: 'string' },
    },
  });
  const number = (name: string, raw: string, min: number): number => {
    const value = Number(raw);
    if (!(value >= min)) throw new Error(`--${name} must be a number >= ${min}, got '${raw}'`);
    return value;
  };
  const quick = values.quick;
  if (!['auto', 'on', 'off'].includes(values.pin)) {
    throw new Error(`--pin must be auto, on or off, got '${values.pin}'`);
  }
  return {
    warmupMs: number('warmup', values.warmup ?? (quick ? '0.2' : '0.5'), 0) * 1000,
    durationMs: number('duration', values.duration ?? (quick ? '1' : '2.5'), 0.1) * 1000,
    repetitions: Math.round(number('repetitions', values.repetitions ?? (quick ? '1' : '5'), 1)),
    timeoutMs: number('timeout', values.timeout, 1) * 1000,
    pin: values.pin as PinSetting,
    json: values.json,
    // A quick run is a smoke test: it does not overwrite the committed figures.
    docs: !values['no-docs'] && !quick,
    command: measuringCommand(process.argv.slice(2)),
    from: values.from ?? null,
  };
}

/** The command line as the report shows it: without the flags that only choose the output. */
function measuringCommand(args: readonly string[]): string {
  const kept = args.filter((arg) => arg !== '--json' && arg !== '--no-docs');
  return ['npm run bench:modes', ...(kept.length > 0 ? ['--', ...kept] : [])].join(' ');
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** Without HELO_* variables, so that every server runs with the flags given and nothing else. */
const CLEAN_ENV = Object.fromEntries(
  Object.entries(process.env).filter(([name]) => !name.startsWith('HELO_')),
);

function startHelo(plan: CpuPlan, mode: Mode, work: Work): Promise<ChildServer> {
  return spawnPinned(plan, () =>
    startChildServer({
      name: `helo server (${mode})`,
      env: CLEAN_ENV,
      args: [
        HELO_BIN,
        'server',
        '--port',
        '0',
        '--store',
        'memory:',
        '--log-level',
        'warn',
        '--mode',
        mode,
        ...(mode === 'cluster' ? ['--workers', String(CLUSTER_WORKERS)] : []),
        ...(mode === 'threads' ? ['--threads', String(THREADS)] : []),
        ...work.args,
      ],
    }),
  );
}

/**
 * Fork with 100 clients starts 100 Node.js processes at once, which share
 * the CPUs and finish together seconds later: the first sessions end only
 * after several seconds, and the next ones come in waves. That cell warms
 * up and measures longer, so that the window holds several waves.
 */
const SLOW_CELL = { warmupFactor: 10, durationFactor: 4 };

function isSlowCell(mode: Mode, clients: number): boolean {
  return mode === 'fork' && clients >= 100;
}

interface Timing {
  readonly warmupMs: number;
  readonly durationMs: number;
}

function cellTiming(mode: Mode, clients: number, settings: Settings): Timing {
  if (!isSlowCell(mode, clients)) return settings;
  return {
    warmupMs: settings.warmupMs * SLOW_CELL.warmupFactor,
    durationMs: settings.durationMs * SLOW_CELL.durationFactor,
  };
}

async function load(
  port: number,
  workload: Workload,
  clients: number,
  timing: Timing & { readonly timeoutMs: number },
) {
  const plan = workloadPlan(workload, PAYLOAD_BYTES);
  const result = await runLoad({
    host: HOST,
    port,
    plan,
    connections: clients,
    maxInFlight: 1,
    threads: defaultThreadCount(HOST, clients),
    warmupMs: timing.warmupMs,
    durationMs: timing.durationMs,
    requests: null,
    ratePerSecond: null,
    timeoutMs: timing.timeoutMs,
  });
  return { result, report: runReport(`tcp://${HOST}:${port}`, plan.kind, result) };
}

/**
 * In a closed loop a connection starts its next session the moment the
 * previous one ends, so the sessions started in the measured window are as
 * many as the sessions that ended in it: per second of the window, that is
 * the throughput. (`helo bench` divides them by the window plus the time
 * the last of them took to finish, which is right when sessions take
 * milliseconds, but under-counts when they take seconds, as fork and
 * sequential do with 100 clients.)
 */
function sessionsPerSecond(sessions: number, timing: Timing): number {
  return sessions / (timing.durationMs / 1000);
}

async function measureCell(
  plan: CpuPlan,
  work: Work,
  mode: Mode,
  clients: number,
  settings: Settings,
): Promise<Cell> {
  const startedAt = performance.now();
  const wallSeconds = (): number => Math.round(performance.now() - startedAt) / 1000;
  let server: ChildServer;
  try {
    server = await startHelo(plan, mode, work);
  } catch (error) {
    return {
      work: work.key,
      mode,
      clients,
      sessionsPerSecond: 0,
      reportedSessionsPerSecond: 0,
      sessions: 0,
      p50Ms: null,
      p99Ms: null,
      errors: {},
      errorCount: 0,
      wallSeconds: wallSeconds(),
      failure: error instanceof Error ? error.message : String(error),
    };
  }
  try {
    const timing = cellTiming(mode, clients, settings);
    const { result, report } = await load(server.port, 'session', clients, {
      ...timing,
      timeoutMs: settings.timeoutMs,
    });
    const measured = result.measured;
    const errors: Record<string, number> = { ...measured.errors };
    if (measured.unexpected > 0) errors.unexpected = measured.unexpected;
    if (measured.unanswered > 0) errors.unanswered = measured.unanswered;
    return {
      work: work.key,
      mode,
      clients,
      sessionsPerSecond: sessionsPerSecond(measured.sessions, timing),
      reportedSessionsPerSecond: report.sessionsPerSecond ?? 0,
      sessions: measured.sessions,
      p50Ms: report.sessionLatencyUs === null ? null : report.sessionLatencyUs.p50 / 1000,
      p99Ms: report.sessionLatencyUs === null ? null : report.sessionLatencyUs.p99 / 1000,
      errors,
      errorCount: Object.values(errors).reduce((sum, count) => sum + count, 0),
      wallSeconds: wallSeconds(),
      failure: null,
    };
  } finally {
    await server.stop();
  }
}

async function measureTarget(
  plan: CpuPlan,
  target: Target,
  settings: Settings,
  note: (text: string) => void,
): Promise<TargetResult> {
  const runs = new Map<Mode, { rates: number[]; p50s: number[] }>([
    [target.numerator, { rates: [], p50s: [] }],
    [target.denominator, { rates: [], p50s: [] }],
  ]);
  let errorCount = 0;
  const clusterSpreads: (number[] | null)[] = [];
  for (let repetition = 0; repetition < settings.repetitions; repetition++) {
    // Alternate who goes first, so that neither always gets the warmer machine.
    const order =
      repetition % 2 === 0
        ? [target.numerator, target.denominator]
        : [target.denominator, target.numerator];
    for (const mode of order) {
      const server = await startHelo(plan, mode, target.work);
      // Which worker got which connection, looked at once the load is running.
      let spread: number[] | null = null;
      const look =
        mode === 'cluster'
          ? setTimeout(
              () => (spread = connectionsPerProcess(server.port, CLUSTER_WORKERS)),
              settings.warmupMs + Math.min(500, settings.durationMs / 2),
            )
          : null;
      try {
        const workload = target.workload ?? 'helo';
        const { result, report } = await load(server.port, workload, target.clients, settings);
        if (look !== null) clusterSpreads.push(spread);
        const record = runs.get(mode)!;
        record.rates.push(report.sessionsPerSecond ?? report.requestsPerSecond);
        record.p50s.push((report.latencyUs?.p50 ?? 0) / 1000);
        errorCount +=
          errorTotal(result.measured) + result.measured.unexpected + result.measured.unanswered;
        note(
          `target ${target.name}, ${mode}, repetition ${repetition + 1}: ` +
            `${formatCount(report.requestsPerSecond)} requests/s`,
        );
      } finally {
        if (look !== null) clearTimeout(look);
        await server.stop();
      }
    }
  }
  const numerator = runs.get(target.numerator)!;
  const denominator = runs.get(target.denominator)!;
  const ratios = numerator.rates.map((rate, index) => rate / denominator.rates[index]!);
  const ratio = median(ratios);
  return {
    name: target.name,
    work: target.work.label,
    clients: target.clients,
    numerator: target.numerator,
    denominator: target.denominator,
    numeratorRuns: numerator.rates,
    denominatorRuns: denominator.rates,
    ratios,
    ratio,
    numeratorMedian: median(numerator.rates),
    denominatorMedian: median(denominator.rates),
    numeratorP50Ms: median(numerator.p50s),
    denominatorP50Ms: median(denominator.p50s),
    aim: target.aim,
    met: target.aimMin === null ? null : ratio >= target.aimMin,
    errorCount,
    clusterSpreads,
  };
}

async function main(): Promise<void> {
  const settings = settingsFromArgs();
  const run: Run =
    settings.from === null
      ? await measureAll(settings)
      : (JSON.parse(readFileSync(settings.from, 'utf8')) as Run);
  const section = formatSection(run);
  process.stdout.write(settings.json ? `${JSON.stringify(run, null, 2)}\n` : `${section}\n`);
  if (settings.docs) {
    writeSection('modes', section);
    writeFileSync(SVG_PATH, await plotCells(run.cells, run.settings));
    process.stderr.write(
      'wrote docs/benchmarks.md (its bench:modes section) and docs/benchmarks.svg\n',
    );
  }
}

async function measureAll(settings: Settings): Promise<Run> {
  const machine = describeMachine();
  const plan = planCpus(settings.pin);
  pinLoadGenerator(plan);
  const startedAt = performance.now();
  const total = WORKS.length * MODES.length * CLIENTS.length;
  let done = 0;
  const note = (text: string): void => {
    const seconds = ((performance.now() - startedAt) / 1000).toFixed(0);
    process.stderr.write(`[${seconds} s] ${text}\n`);
  };
  note(plan.description);

  const cells: Cell[] = [];
  for (const work of WORKS) {
    for (const mode of MODES) {
      for (const clients of CLIENTS) {
        const cell = await measureCell(plan, work, mode, clients, settings);
        cells.push(cell);
        note(
          `[${++done}/${total}] ${work.label}, ${mode}, ${clients} client${clients === 1 ? '' : 's'}: ` +
            (cell.failure ?? describeCell(cell)),
        );
      }
    }
  }
  const targets: TargetResult[] = [];
  for (const target of TARGETS) targets.push(await measureTarget(plan, target, settings, note));
  return {
    machine,
    settings,
    pinning: plan,
    totalSeconds: Math.round((performance.now() - startedAt) / 1000),
    loadAtEnd: loadAverage(),
    cells,
    targets,
  };
}

function describeCell(cell: Cell): string {
  const latency =
    cell.p50Ms === null ? '' : `, p50 ${formatMs(cell.p50Ms)} ms, p99 ${formatMs(cell.p99Ms!)} ms`;
  const errors = cell.errorCount === 0 ? '' : `, ${cell.errorCount} errors`;
  return `${formatCount(cell.sessionsPerSecond)} sessions/s${latency}${errors} (${cell.wallSeconds} s)`;
}

function plotCells(cells: readonly Cell[], settings: Settings): Promise<string> {
  const label = (key: Work['key']): string => WORKS.find((work) => work.key === key)!.label;
  return renderModesSvg(
    cells
      .filter((cell) => cell.failure === null)
      .map((cell) => ({
        work: label(cell.work),
        mode: cell.mode,
        clients: cell.clients,
        sessionsPerSecond: cell.sessionsPerSecond,
      })),
    {
      title: 'helo: whole sessions per second by concurrency model',
      subtitle: [
        'each client: connect, HELO, DATA, QUIT, then again (closed loop)',
        `a fresh server per point, ${settings.durationMs / 1000} s measured ` +
          `(fork with 100 clients: ${cellTiming('fork', 100, settings).durationMs / 1000} s); ` +
          `cluster = ${CLUSTER_WORKERS} workers, threads = ${THREADS} threads`,
        'higher is better; tables in docs/benchmarks.md',
      ],
      works: WORKS.map((work) => work.label),
      modes: [...MODES],
    },
  );
}

// ---- the Markdown section ----

function formatSection(run: Run): string {
  const { cells, targets, settings, pinning: plan, machine, totalSeconds } = run;
  const cellOf = (work: Work['key'], mode: Mode, clients: number): Cell | undefined =>
    cells.find((cell) => cell.work === work && cell.mode === mode && cell.clients === clients);
  const slow = cellTiming('fork', 100, settings);
  const lines: string[] = [
    '## Five ways to serve many clients (`npm run bench:modes`)',
    '',
    '![Sessions per second by mode and clients, one panel per kind of work](benchmarks.svg)',
    '',
    `Command: \`${settings.command}\` (${totalSeconds} s in all). Machine:`,
    '',
    ...machineLines(machine, run.loadAtEnd),
    '',
    `${plan.description} The load generator runs in ` +
      `${defaultThreadCount(HOST, 100)} worker thread(s) (src/loadgen, as \`helo bench\`).`,
    '',
    'Every cell is a fresh `helo server --port 0 --store memory: --log-level warn --mode MODE` ' +
      `(\`--workers ${CLUSTER_WORKERS}\` for cluster, \`--threads ${THREADS}\` for threads) with the work flags of its table, ` +
      'loaded with the `session` workload of `helo bench`: each client connects, sends ' +
      `\`HELO bench\`, an inline \`DATA\` of ${PAYLOAD_BYTES} bytes and \`QUIT\`, waits for ` +
      'the server to close, and connects again at once (closed loop). ' +
      `${settings.warmupMs / 1000} s of warm-up, then ${settings.durationMs / 1000} s measured ` +
      `(fork with 100 clients: ${slow.warmupMs / 1000} s and ${slow.durationMs / 1000} s, since ` +
      'its 100 process starts share the CPUs and end in waves, seconds apart). ' +
      '**sessions/s** counts the sessions started in the measured window per second of it ' +
      '(in a closed loop, as many as ended in it; `helo bench` divides them by the window ' +
      'plus the time the last of them took to finish, which under-counts when sessions take ' +
      'seconds, as with fork or sequential and 100 clients); **p50** and **p99** are the session ' +
      'latencies of those sessions, from the start of the connection to `200 BYE`. ' +
      `A session or reply taking more than ${settings.timeoutMs / 1000} s would count as a ` +
      '`timeout` error; **errors** counts every error, unexpected reply and unanswered ' +
      'request (there should be none). One run per cell: on a shared machine, read ' +
      'differences under about 20% as noise.',
    '',
  ];
  for (const work of WORKS) {
    lines.push(`### ${work.label}`, '');
    const rows: string[][] = [];
    for (const mode of MODES) {
      for (const clients of CLIENTS) {
        const cell = cellOf(work.key, mode, clients);
        if (cell === undefined) continue;
        if (cell.failure !== null) {
          rows.push([`\`${mode}\``, String(clients), 'did not start', '', '', '']);
          continue;
        }
        rows.push([
          `\`${mode}\``,
          String(clients),
          formatCount(cell.sessionsPerSecond),
          cell.p50Ms === null ? '-' : formatMs(cell.p50Ms),
          cell.p99Ms === null ? '-' : formatMs(cell.p99Ms),
          formatErrors(cell),
        ]);
      }
    }
    lines.push(
      markdownTable(['mode', 'clients', 'sessions/s', 'p50 ms', 'p99 ms', 'errors'], rows, [
        'left',
        'right',
        'right',
        'right',
        'right',
        'right',
      ]),
      '',
    );
  }

  lines.push(
    '### Targets: cluster against event loop',
    '',
    'Steady connections this time (the `helo` workload: `HELO` and `100 OK`, over and over, ' +
      'one request in flight per connection), so that only the serving of requests is ' +
      'compared; the W4 row alone compares whole sessions/s (connect, `HELO`, `DATA`, `QUIT`), ' +
      'where the workers accept the connections themselves, but each one is admitted with a ' +
      'slot the primary lends (32 at a time) and each payload is stored by the primary, one ' +
      `IPC round trip per batch. Each ratio is the median of ${settings.repetitions} repetition(s) of both ` +
      'servers in turn (alternating which goes first), each measured like a cell above. ' +
      'In brackets after each repetition: how many of the connections each cluster worker ' +
      'was serving (from `ss -tnp`, during the measurement); the kernel, not helo, decides.',
    '',
    markdownTable(
      [
        'work',
        'clients',
        'ratio',
        'measured (median)',
        'aim',
        'median when both workers had connections',
        'each repetition',
        'errors',
      ],
      targets.map((target) => [
        target.work,
        String(target.clients),
        `${target.numerator} / ${target.denominator}`,
        `**${target.ratio.toFixed(2)}**` +
          (target.met === null ? '' : target.met ? ' (met)' : ' (not met)'),
        target.aim,
        bothWorkersRatio(target),
        target.ratios
          .map((ratio, index) => {
            const spread = target.clusterSpreads[index];
            return spread ? `${ratio.toFixed(2)} (${spread.join('+')})` : ratio.toFixed(2);
          })
          .join(', '),
        String(target.errorCount),
      ]),
      ['left', 'right', 'left', 'right', 'left', 'right', 'left', 'right'],
    ),
    '',
    markdownTable(
      ['work', 'clients', 'mode', 'requests/s (median)', 'request p50 ms'],
      targets.flatMap((target) => [
        [
          target.work,
          String(target.clients),
          `\`${target.numerator}\``,
          formatCount(target.numeratorMedian),
          formatMs(target.numeratorP50Ms),
        ],
        [
          target.work,
          String(target.clients),
          `\`${target.denominator}\``,
          formatCount(target.denominatorMedian),
          formatMs(target.denominatorP50Ms),
        ],
      ]),
      ['left', 'right', 'left', 'right', 'right'],
    ),
    '',
    '### What this run shows',
    '',
    ...lessons(cellOf, targets, machine.cpus),
  );
  return lines.join('\n');
}

/** The repetitions in which every cluster worker was serving at least one connection. */
function bothWorkersRatios(target: TargetResult): number[] {
  return target.ratios.filter((_, index) => {
    const spread = target.clusterSpreads[index];
    return spread !== null && spread !== undefined && !spread.includes(0);
  });
}

function bothWorkersRatio(target: TargetResult): string {
  const ratios = bothWorkersRatios(target);
  return ratios.length === 0
    ? '- (none)'
    : `${median(ratios).toFixed(2)} (${ratios.length} of ${target.ratios.length})`;
}

function formatErrors(cell: Cell): string {
  if (cell.errorCount === 0) return '0';
  const kinds = Object.entries(cell.errors)
    .filter(([, count]) => count > 0)
    .map(([kind, count]) => `${formatCount(count)} ${kind}`)
    .join(', ');
  return `${formatCount(cell.errorCount)} (${kinds})`;
}

/**
 * The lessons, each stated with this run's numbers and checked against
 * them: where a number does not show what the lab expects, the text says
 * so instead of claiming it.
 */
function lessons(
  cellOf: (work: Work['key'], mode: Mode, clients: number) => Cell | undefined,
  targets: readonly TargetResult[],
  cpus: number,
): string[] {
  const rate = (work: Work['key'], mode: Mode, clients: number): number =>
    cellOf(work, mode, clients)?.sessionsPerSecond ?? 0;
  const p50 = (work: Work['key'], mode: Mode, clients: number): number =>
    cellOf(work, mode, clients)?.p50Ms ?? NaN;
  const times = (value: number): string =>
    value >= 10 ? `${Math.round(value)}×` : `${value.toFixed(1)}×`;
  const ms = (value: number): string => `${formatMs(value)} ms`;
  const out: string[] = [];

  // Sequential: throughput flat while clients grow; latency grows with the queue.
  {
    const series = (work: Work['key'], mode: Mode): string =>
      CLIENTS.map((clients) => formatCount(rate(work, mode, clients))).join(' → ');
    const ioGrowth = rate('io', 'sequential', 100) / rate('io', 'sequential', 1);
    const latencyGrowth = p50('io', 'sequential', 100) / p50('io', 'sequential', 1);
    const noneGrowth = rate('none', 'sequential', 100) / rate('none', 'sequential', 1);
    const eventGrowth = rate('none', 'event-loop', 100) / rate('none', 'event-loop', 1);
    const shows = ioGrowth < 1.5 && latencyGrowth > 10;
    out.push(
      `- **Sequential serves one session at a time.** With 10 ms of I/O per request, its ` +
        `sessions/s for 1, 10 and 100 clients are ${series('io', 'sequential')}, while the ` +
        `event loop's are ${series('io', 'event-loop')}; a session's p50 grows from ` +
        `${ms(p50('io', 'sequential', 1))} to ${ms(p50('io', 'sequential', 100))}, since each ` +
        'client waits for every client ahead of it. ' +
        (shows
          ? 'The throughput stays where one client puts it, so what each client gets ' +
            'collapses as they grow, and the wait grows with the queue. '
          : 'This run does not show the expected flat throughput and growing latency ' +
            'clearly; re-run it on a quieter machine. ') +
        `With no work, sequential goes ${times(noneGrowth)} from 1 to 100 clients (event ` +
        `loop: ${times(eventGrowth)})` +
        (noneGrowth >= 1.2
          ? ': a little gain, because the next client has already connected and sent its ' +
            'HELO, which wait in the kernel, so between two sessions the server does not ' +
            'wait for a connection and a first request; the sessions are still served one ' +
            'by one.'
          : '.'),
    );
  }
  // Fork: a process start per connection.
  {
    const forkOne = rate('none', 'fork', 1);
    const eventOne = rate('none', 'event-loop', 1);
    const startCost = p50('none', 'fork', 1) - p50('none', 'event-loop', 1);
    const forkBest = Math.max(...CLIENTS.map((clients) => rate('none', 'fork', clients)));
    const eventBest = Math.max(...CLIENTS.map((clients) => rate('none', 'event-loop', clients)));
    out.push(
      `- **Fork pays a process start per connection.** With one client and no work, fork ` +
        `completes ${formatCount(forkOne)} sessions/s against ${formatCount(eventOne)} for ` +
        `the event loop: a session's p50 is ${ms(p50('none', 'fork', 1))} against ` +
        `${ms(p50('none', 'event-loop', 1))}, so starting a Node.js child costs about ` +
        `${ms(startCost)} of every session. More clients only queue more starts on ` +
        `${cpus} CPU${cpus === 1 ? '' : 's'}: its best is ${formatCount(forkBest)} sessions/s ` +
        `(event loop: ${formatCount(eventBest)}, ${times(eventBest / forkBest)} more)` +
        (rate('io', 'fork', 100) < rate('io', 'event-loop', 100)
          ? ', and even I/O-bound work, where every session spends 30 ms waiting, does not ' +
            'hide the start-up cost at 100 clients.'
          : '; with I/O-bound work the wait hides part of that cost.'),
    );
  }
  // I/O-bound: event loop as good as cluster.
  {
    const ioTargets = targets.filter((target) => target.work.startsWith('I/O'));
    const steadyClose = ioTargets.every((target) => target.ratio >= 0.9);
    const event = rate('io', 'event-loop', 100);
    const cluster = rate('io', 'cluster', 100);
    // Each session waits 3 × 10 ms: 100 clients can do at most 100 / 30 ms.
    const ideal = 100 / 0.03;
    out.push(
      `- **I/O-bound work: one event loop is enough.** With \`--work-ms 10\` a request ` +
        'mostly waits, and one process waits for many requests at once. On steady ' +
        'connections, event loop / cluster is ' +
        ioTargets.map((target) => `${target.ratio.toFixed(2)} at ${target.clients}`).join(' and ') +
        ' clients' +
        (steadyClose
          ? ': a second process adds nothing when the work is waiting, since the throughput ' +
            'is set by clients / wait (10 clients / 10 ms = 1,000 requests/s), which one ' +
            'event loop already reaches. '
          : ': here the event loop fell short of the cluster by more than 10% in at least ' +
            'one case (see the repetitions: the machine was busy, or 100 clients already ' +
            'need more than one CPU). ') +
        `In sessions at 100 clients (at most ${formatCount(ideal)} sessions/s, 100 clients ` +
        `/ 30 ms), the event loop completes ${formatCount(event)} and the cluster ` +
        `${formatCount(cluster)}` +
        (cluster > 1.15 * event
          ? ': there the cluster does better, since accepting and closing thousands of ' +
            'connections a second is CPU work on top of the waiting, and two processes ' +
            'share it.'
          : cluster < 0.85 * event
            ? ': there the event loop does better, probably in part because every DATA of a ' +
              'cluster worker also goes to the primary, which owns the store, and waits for ' +
              'its answer.'
            : ': about the same.'),
    );
  }
  // CPU-bound: cluster wins.
  {
    const cpuTarget = targets.find((target) => target.work.startsWith('CPU'));
    const event = rate('cpu', 'event-loop', 10);
    const cluster = rate('cpu', 'cluster', 10);
    const sequential = rate('cpu', 'sequential', 10);
    const repetitions = cpuTarget?.ratios.length ?? 0;
    const oneWorker = (cpuTarget?.ratios ?? [])
      .map((ratio, index) => ({ ratio, spread: cpuTarget?.clusterSpreads[index] ?? null }))
      .filter(({ spread }) => spread !== null && spread.includes(0));
    const both = cpuTarget === undefined ? [] : bothWorkersRatios(cpuTarget);
    const bothMedian = both.length > 0 ? median(both) : null;
    const heading = cpuTarget?.met
      ? 'CPU-bound work: the cluster wins'
      : bothMedian !== null && bothMedian >= 1.6
        ? 'CPU-bound work: the cluster wins, when the kernel lets it'
        : 'CPU-bound work: the cluster should win';
    out.push(
      `- **${heading}.** With \`--work-cpu-ms 2\` a request holds its ` +
        "process's only thread for 2 ms, so one process serves at most about 500 requests/s " +
        `whatever the model; ${CLUSTER_WORKERS} workers can use ${CLUSTER_WORKERS} CPUs. On ` +
        `steady connections at 10 clients, cluster / event loop is ` +
        `${cpuTarget?.ratio.toFixed(2) ?? '-'} (median of ${repetitions}; aim >= 1.6: ` +
        `${cpuTarget?.met ? 'met' : 'not met'})` +
        (bothMedian !== null
          ? `, and ${bothMedian.toFixed(2)} in the ${both.length} repetition(s) where both ` +
            'workers had connections. '
          : '. ') +
        (oneWorker.length > 0
          ? `In ${oneWorker.length} of ${repetitions} repetitions every connection went to ` +
            `one worker (${oneWorker.map(({ spread }) => spread!.join('+')).join(', ')}), ` +
            'the other idled, and the cluster was no faster than one process ' +
            `(${oneWorker.map(({ ratio }) => ratio.toFixed(2)).join(', ')}). helo's workers ` +
            'accept on one shared socket (cluster-server.ts, SCHED_NONE), so the kernel ' +
            "and the workers' timing decide who gets a connection, not the load: the load " +
            'generator opens its 10 connections within a millisecond, and a worker that wakes ' +
            'up accepts every connection already waiting (libuv accepts until the queue is ' +
            'empty). Long-lived connections keep that first split for good. '
          : '') +
        `In sessions at 10 clients, ${formatCount(cluster)} against ${formatCount(event)} ` +
        `sessions/s (${times(cluster / event)})` +
        (cluster / event > 2.1
          ? ', more than 2 CPUs can explain: that event-loop cell was disturbed by the busy ' +
            'machine. '
          : cluster / event >= 1.4
            ? ': short connections are spread anew with every session, so both workers ' +
              'stay busy. '
            : ': each session also pays for a new connection and, in a cluster worker, a ' +
              'round trip to the primary for its DATA. ') +
        (Math.abs(event / sequential - 1) < 0.15
          ? `The event loop is no faster here than sequential (${formatCount(sequential)} ` +
            'sessions/s): when the CPU is the limit, interleaving clients only shares it ' +
            'differently. '
          : `Sequential completes ${formatCount(sequential)} sessions/s. `) +
        (cpus <= 2
          ? `On this ${cpus}-CPU machine the load generator shares the CPUs with the ` +
            'workers, so the cluster cannot quite reach 2×.'
          : ''),
    );
  }
  // Cluster without work.
  {
    const event = rate('none', 'event-loop', 100);
    const cluster = rate('none', 'cluster', 100);
    const eventOne = rate('none', 'event-loop', 1);
    const clusterOne = rate('none', 'cluster', 1);
    const ratio = cluster / event;
    out.push(
      `- **No work: ${ratio > 1.2 ? 'the cluster helps only a little' : 'the cluster does not help here'}.** ` +
        'At 100 clients, ' +
        `${formatCount(event)} (event loop) against ${formatCount(cluster)} (cluster) ` +
        `sessions/s (cluster / event loop ${ratio.toFixed(2)}); at 1 client, ` +
        `${formatCount(eventOne)} against ${formatCount(clusterOne)}. Without work, a session ` +
        'costs the server about as much as it costs the load generator and the kernel ' +
        `(loopback TCP, connect and close), which share the same ${cpus} CPUs` +
        (cpus <= 2 ? ', so a second worker has no idle CPU to use' : '') +
        '; and a cluster worker does not own the store, so each DATA waits for a round trip ' +
        'to the primary (ARCHITECTURE.md, "One store owner"), which shows most with one ' +
        'client, where nothing else fills the wait.' +
        (ratio < 0.8
          ? ' How large the gap is varies from run to run on this shared machine (one run ' +
            'per cell); that a second worker brings no gain without work, on 2 CPUs, is what ' +
            'to read from it.'
          : ''),
    );
  }
  // How the kernel spread the cluster's connections.
  {
    const seen = targets.flatMap((target) =>
      target.clusterSpreads.flatMap((spread) =>
        spread === null ? [] : [{ target, spread, share: spread[0]! / target.clients }],
      ),
    );
    const uneven = seen.filter(({ share }) => share >= 0.8);
    if (seen.length > 0) {
      out.push(
        '- **The kernel spreads connections, not load.** A cluster worker serves the ' +
          'connections it accepted, and with the workers accepting on one shared socket ' +
          '(cluster-server.ts explains why) the kernel picks the worker. In the target runs ' +
          `above, ${uneven.length} of ${seen.length} cluster runs had 80% or more of the ` +
          'connections on one worker' +
          (uneven.length > 0
            ? ` (${uneven.map(({ spread }) => spread.join('+')).join(', ')}). Node's cluster ` +
              'documentation warns of this for the shared-socket approach. With CPU-bound ' +
              'work it costs little throughput as long as each worker has at least one busy ' +
              "connection, but the busier worker's clients wait longer; with no connection at " +
              'all, a worker idles and the cluster is no faster than one process.'
            : '.'),
      );
    }
  }
  return out;
}

main().catch((error: unknown) => {
  process.stderr.write(
    `npm run bench:modes: ${error instanceof Error ? error.message : String(error)}\n`,
  );
  process.exit(1);
});
