/**
 * `npm run bench:scaling`: what HAProxy in front of 1, 2 and 3 helo servers
 * on one PostgreSQL store does to throughput, against one server on the same
 * store without HAProxy, on loopback (docs/SCALING.md):
 *
 *   sessions/s   connect, HELO, DATA of 5 bytes, QUIT (BENCH.md's W4), 50 clients
 *   DATA acks/s  inline DATA of 100 bytes, 50 connections, each ack durable
 *
 * Everything runs on this machine: a private PostgreSQL (support/postgres.ts),
 * the servers (`--proxy-protocol` behind HAProxy, as support/haproxy.ts
 * starts them), HAProxy with deploy/haproxy/haproxy.cfg, and `helo bench
 * --json` as the load generator, one child process per run. Each figure is
 * the median of a few repetitions, the setups alternating in order within
 * each. Around every run the CPU time (utime + stime, /proc) of each
 * component is read, so that the report says who used the CPU: the helo
 * servers, HAProxy, PostgreSQL (the postmaster and its backends), the
 * generator, this driver, and the rest of the machine (other users).
 *
 * Usage: npm run bench:scaling -- [--quick] [--json] [--repetitions N]
 *          [--duration S] [--warmup S] [--connections N] [--no-plot]
 * Defaults: 5 repetitions of 3 s after 1 s of warm-up, about 3 minutes;
 * --quick: 3 repetitions of 1 s after 0.5 s, about 1 minute.
 *        npm run bench:scaling -- --from RUN.json   (re-render an earlier --json run)
 * (build first: npm run build.)
 */
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { freePort, startPostgres, type PostgresCluster } from '../support/postgres.js';
import {
  haproxyPath,
  startBackendServer,
  startHaproxy,
  type BackendServer,
  type Haproxy,
} from '../support/haproxy.js';
import { startServerProcess, type StartingServer } from '../support/server-process.js';
import { describeMachine, loadAverage, machineLines, type MachineInfo } from './machine.js';
import { formatCount } from './markdown-table.js';
import { renderScalingSvg } from './scaling-plot.js';
import {
  COMPONENTS,
  type ComponentCpu,
  cpuTable,
  type Load,
  LOADS,
  machineBusyTicks,
  type Measurement,
  parseProcStat,
  perOperationTable,
  type Setup,
  SETUPS,
  summarize,
  throughputTable,
} from './scaling-report.js';

const HELO_BIN = fileURLToPath(new URL('../../bin/helo', import.meta.url));
const SVG_PATH = fileURLToPath(new URL('../../docs/scaling.svg', import.meta.url));
const SESSION_PAYLOAD_BYTES = 5;
const DATA_PAYLOAD_BYTES = 100;
/** Servers' log level: the same for every setup; per-session info lines would also load this driver. */
const SERVER_ARGS = ['--log-level', 'warn'];

interface Settings {
  readonly command: string;
  readonly repetitions: number;
  readonly durationSeconds: number;
  readonly warmupSeconds: number;
  readonly connections: number;
}

interface Run {
  readonly machine: MachineInfo;
  readonly settings: Settings;
  readonly loadAtEnd: number;
  readonly totalSeconds: number;
  readonly measurements: Measurement[];
}

function settingsFromArgs(): Settings & { json: boolean; plot: boolean; from: string | null } {
  const { values } = parseArgs({
    options: {
      quick: { type: 'boolean', default: false },
      json: { type: 'boolean', default: false },
      'no-plot': { type: 'boolean', default: false },
      from: { type: 'string' },
      repetitions: { type: 'string' },
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string', default: '50' },
    },
  });
  const positive = (name: string, raw: string): number => {
    const value = Number(raw);
    if (!(value > 0)) throw new Error(`--${name} must be a positive number, got '${raw}'`);
    return value;
  };
  const quick = values.quick;
  const repetitions = Math.round(
    positive('repetitions', values.repetitions ?? (quick ? '3' : '5')),
  );
  if (repetitions < 3) throw new Error('--repetitions: at least 3, for a median');
  return {
    json: values.json,
    plot: !values['no-plot'],
    from: values.from ?? null,
    command: ['npm run bench:scaling', ...(process.argv.length > 2 ? ['--'] : [])]
      .concat(process.argv.slice(2))
      .join(' '),
    repetitions,
    durationSeconds: positive('duration', values.duration ?? (quick ? '1' : '3')),
    warmupSeconds: Number(values.warmup ?? (quick ? '0.5' : '1')),
    connections: Math.round(positive('connections', values.connections)),
  };
}

// ---- CPU time from /proc ----

const CLOCK_TICKS =
  Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

function statOf(pid: number | undefined): ReturnType<typeof parseProcStat> | null {
  if (pid === undefined) return null;
  try {
    return parseProcStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return null;
  }
}

/** The postmaster and every process it started (its backends, the WAL writer…), in ticks. */
function postgresTicks(cluster: PostgresCluster): number {
  const postmaster = Number(
    readFileSync(join(cluster.directory, 'data', 'postmaster.pid'), 'utf8').split('\n', 1)[0],
  );
  const root = statOf(postmaster);
  let ticks = root === null ? 0 : root.own + root.children;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = statOf(Number(name));
    if (stat !== null && stat.ppid === postmaster) ticks += stat.own;
  }
  return ticks;
}

interface Processes {
  readonly cluster: PostgresCluster;
  /** Every helo server's --http-port, for /metrics. */
  readonly httpPorts: readonly number[];
  readonly heloPids: () => (number | undefined)[];
  readonly haproxyPids: () => (number | undefined)[];
}

/** Ticks so far per component; `generator` is this process's reaped children (the bench runs). */
function sampleTicks(processes: Processes): ComponentCpu {
  const own = (pids: (number | undefined)[]) =>
    pids.reduce((sum: number, pid) => sum + (statOf(pid)?.own ?? 0), 0);
  const self = statOf(process.pid)!;
  return {
    helo: own(processes.heloPids()),
    haproxy: own(processes.haproxyPids()),
    postgres: postgresTicks(processes.cluster),
    generator: self.children,
    driver: self.own,
    other: machineBusyTicks(readFileSync('/proc/stat', 'utf8')),
  };
}

/** CPU seconds between two samples; `other` becomes the machine's busy time not ours. */
function cpuBetween(before: ComponentCpu, after: ComponentCpu): ComponentCpu {
  const seconds = Object.fromEntries(
    COMPONENTS.map((component) => [
      component,
      (after[component] - before[component]) / CLOCK_TICKS,
    ]),
  ) as ComponentCpu;
  const ours = COMPONENTS.filter((component) => component !== 'other').reduce(
    (sum, component) => sum + seconds[component],
    0,
  );
  return { ...seconds, other: Math.max(0, seconds.other - ours) };
}

/** Group commits and their records so far, summed over every server's /metrics. */
async function commitTotals(
  httpPorts: readonly number[],
): Promise<{ commits: number; records: number }> {
  let commits = 0;
  let records = 0;
  for (const port of httpPorts) {
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const value = (name: string) =>
      Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? 0);
    commits += value('helo_commit_batch_size_count');
    records += value('helo_commit_batch_size_sum');
  }
  return { commits, records };
}

// ---- one run of the generator ----

interface BenchJson {
  readonly result: {
    readonly sessions: number | null;
    readonly sessionsPerSecond: number | null;
    readonly elapsedSeconds: number;
    readonly repliesByCode: Record<string, number>;
    readonly unexpected: number;
    readonly errorCount: number;
    readonly warmup: {
      readonly sessions: number | null;
      readonly repliesByCode: Record<string, number>;
    } | null;
  };
}

async function runBench(
  port: number,
  load: Load,
  settings: Settings,
  processes: Processes,
): Promise<Omit<Measurement, 'setup' | 'repetition'>> {
  const workload =
    load === 'sessions'
      ? ['--workload', 'session', '--size', String(SESSION_PAYLOAD_BYTES)]
      : ['--workload', 'data', '--size', String(DATA_PAYLOAD_BYTES)];
  const args = [
    HELO_BIN,
    'bench',
    `127.0.0.1:${port}`,
    ...workload,
    '--connections',
    String(settings.connections),
    '--duration',
    String(settings.durationSeconds),
    '--warmup',
    String(settings.warmupSeconds),
    '--json',
  ];
  const committedBefore = await commitTotals(processes.httpPorts);
  const before = sampleTicks(processes);
  const started = performance.now();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
  const [code] = (await once(child, 'exit')) as [number | null];
  const wallSeconds = (performance.now() - started) / 1000;
  const after = sampleTicks(processes);
  const committedAfter = await commitTotals(processes.httpPorts);
  if (code !== 0) throw new Error(`helo bench exited with ${code}: ${stderr}`);
  const { result } = JSON.parse(stdout) as BenchJson;
  const acks = (codes: Record<string, number> | undefined) => codes?.['300'] ?? 0;
  const operations =
    load === 'sessions'
      ? (result.sessions ?? 0) + (result.warmup?.sessions ?? 0)
      : acks(result.repliesByCode) + acks(result.warmup?.repliesByCode);
  return {
    load,
    // DATA: the acknowledgements (300 DRCV) per measured second.
    throughput:
      load === 'sessions'
        ? (result.sessionsPerSecond ?? 0)
        : acks(result.repliesByCode) / result.elapsedSeconds,
    operations,
    wallSeconds,
    cpuSeconds: cpuBetween(before, after),
    commits: committedAfter.commits - committedBefore.commits,
    committedRecords: committedAfter.records - committedBefore.records,
    problems: result.errorCount + result.unexpected,
  };
}

// ---- the setups ----

async function measureAll(settings: Settings): Promise<Run> {
  if (haproxyPath() === null) throw new Error('haproxy is not installed: apt-get install haproxy');
  const machine = describeMachine();
  const startedAt = performance.now();
  const note = (text: string): void => {
    const seconds = ((performance.now() - startedAt) / 1000).toFixed(0);
    process.stderr.write(`[${seconds} s] ${text}\n`);
  };
  let cluster: PostgresCluster | undefined;
  let direct: StartingServer | undefined;
  const backends: BackendServer[] = [];
  const balancers: Haproxy[] = [];
  try {
    note('starting a private PostgreSQL, 4 helo servers and 3 HAProxy instances');
    cluster = await startPostgres();
    const store = await cluster.createDatabase('helo_scaling');
    const directPort = await freePort();
    const directHttpPort = await freePort();
    // The HTTP port only for /metrics, read between runs (the servers behind
    // HAProxy have one for /readyz).
    direct = startServerProcess(
      ['--store', store, '--http-port', String(directHttpPort), ...SERVER_ARGS],
      {
        leadingArgs: ['--port', String(directPort)],
      },
    );
    await direct.listening;
    for (let index = 0; index < 3; index += 1) {
      backends.push(await startBackendServer({ store, args: SERVER_ARGS }));
    }
    // One HAProxy per setup, all started now, so that the setups can take turns.
    for (let count = 1; count <= 3; count += 1) {
      const haproxy = await startHaproxy(backends.slice(0, count));
      await haproxy.waitUntilUp();
      balancers.push(haproxy);
    }
    const processes: Processes = {
      cluster,
      httpPorts: [directHttpPort, ...backends.map((backend) => backend.httpPort)],
      heloPids: () => [direct!.child.pid, ...backends.map((backend) => backend.process.child.pid)],
      haproxyPids: () => balancers.map((haproxy) => haproxy.child.pid),
    };
    const portOf = (setup: Setup): number =>
      setup === 'direct' ? directPort : balancers[Number(setup.slice(-1)) - 1]!.port;

    const measurements: Measurement[] = [];
    const total = settings.repetitions * LOADS.length * SETUPS.length;
    for (let repetition = 1; repetition <= settings.repetitions; repetition += 1) {
      // Alternate the order, so that a drift in the machine's load (or the
      // table growing) does not always favour the same setup.
      const order = repetition % 2 === 1 ? [...SETUPS] : [...SETUPS].reverse();
      for (const load of LOADS) {
        for (const setup of order) {
          const measurement = {
            setup,
            repetition,
            ...(await runBench(portOf(setup), load, settings, processes)),
          };
          measurements.push(measurement);
          const cpu = COMPONENTS.map(
            (component) =>
              `${component} ${(measurement.cpuSeconds[component] / measurement.wallSeconds).toFixed(2)}`,
          ).join(', ');
          note(
            `[${measurements.length}/${total}] ${setup}, ${load}: ` +
              `${formatCount(measurement.throughput)}/s` +
              `, ${(measurement.committedRecords / Math.max(1, measurement.commits)).toFixed(1)} records/commit` +
              (measurement.problems > 0 ? `, ${measurement.problems} problems` : '') +
              ` (CPUs: ${cpu})`,
          );
        }
      }
    }
    return {
      machine,
      settings,
      loadAtEnd: loadAverage(),
      totalSeconds: Math.round((performance.now() - startedAt) / 1000),
      measurements,
    };
  } finally {
    await Promise.all(balancers.map((haproxy) => haproxy.stop()));
    await Promise.all([
      direct?.stop('SIGTERM'),
      ...backends.map((backend) => backend.stop('SIGTERM')),
    ]);
    await cluster?.destroy();
  }
}

function formatReport(run: Run): string {
  const cells = summarize(run.measurements);
  const { settings } = run;
  return [
    `Command: \`${settings.command}\` (${run.totalSeconds} s in all). Machine:`,
    '',
    ...machineLines(run.machine, run.loadAtEnd),
    '',
    `Medians of ${settings.repetitions} repetitions (setups alternating), ` +
      `${settings.durationSeconds} s measured after ${settings.warmupSeconds} s of warm-up, ` +
      `${settings.connections} connections; sessions: connect, HELO, DATA of ` +
      `${SESSION_PAYLOAD_BYTES} bytes, QUIT; DATA: inline DATA of ${DATA_PAYLOAD_BYTES} bytes, ` +
      'each acknowledged after its commit in PostgreSQL.',
    '',
    throughputTable(cells),
    '',
    'CPUs kept busy during the runs (CPU seconds / wall seconds, /proc utime+stime; ' +
      `the machine has ${run.machine.cpus}; "other" is the rest of the machine, other users' ` +
      'work):',
    '',
    cpuTable(cells),
    '',
    'CPU time per session or per acknowledged DATA, in µs (warm-up included; "driver" is ' +
      "bench/scaling.ts itself, reading HAProxy's log), and records per group commit " +
      '(helo_commit_batch_size over every server):',
    '',
    perOperationTable(cells),
  ].join('\n');
}

async function main(): Promise<void> {
  const settings = settingsFromArgs();
  const run: Run =
    settings.from === null
      ? await measureAll(settings)
      : (JSON.parse(readFileSync(settings.from, 'utf8')) as Run);
  process.stdout.write(
    settings.json ? `${JSON.stringify(run, null, 2)}\n` : `${formatReport(run)}\n`,
  );
  if (settings.plot) {
    const svg = await renderScalingSvg(summarize(run.measurements), {
      title: 'helo behind HAProxy: 1, 2, 3 servers on one PostgreSQL, one 2-CPU machine',
      subtitle: [
        `median of ${run.settings.repetitions} runs; ${run.settings.connections} connections; ` +
          `${run.machine.cpus} CPUs (${run.machine.cpuModel}), commit ${run.machine.commit ?? '?'}`,
        'top: throughput (ratio to 1 server without HAProxy), which swings with other users’ load;',
        'bottom: CPU time per session or acknowledgement, by component (tables: docs/SCALING.md)',
      ],
    });
    writeFileSync(SVG_PATH, svg);
    process.stderr.write('wrote docs/scaling.svg\n');
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
