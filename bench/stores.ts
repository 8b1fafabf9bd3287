/**
 * `npm run bench:stores`: the stores compared in one run (docs/STORES.md).
 *
 *   durable DATA acknowledgements/s (100-byte payloads, pipeline 1) and
 *   whole sessions/s (connect, HELO, DATA, QUIT), 50 connections, one
 *   event-loop server on memory:, SQLite and PostgreSQL; then 1, 2 and 3
 *   servers writing DATA to one PostgreSQL database (aggregate acks/s, the
 *   50 connections spread over the servers).
 *
 * PostgreSQL is a private cluster started here (support/postgres.ts, fsync
 * on) and removed at the end; every measurement gets fresh servers and a
 * fresh database or file. Figures are ratios to SQLite measured in the same
 * repetition, and medians over the repetitions: the machine is shared, so
 * absolute numbers vary more than ratios.
 *
 * Usage: npm run bench:stores -- [--json] [--repetitions N] [--duration S]
 *          [--warmup S] [--connections N] [--only NAME-PART]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type ChildServer, startChildServer } from '../src/loadgen/child-server.js';
import { errorTotal } from '../src/loadgen/load-counts.js';
import { runReport, throughputOf } from '../src/loadgen/report.js';
import { runLoad } from '../src/loadgen/run-load.js';
import { type Workload, workloadPlan } from '../src/loadgen/workloads.js';
import { startPostgres, type PostgresCluster } from '../support/postgres.js';

const HELO_BIN = fileURLToPath(new URL('../../bin/helo', import.meta.url));
const PAYLOAD_BYTES = 100;

type StoreKind = 'memory' | 'sqlite' | 'postgres';

interface Scenario {
  readonly name: string;
  readonly workload: Workload;
  readonly store: StoreKind;
  readonly servers: number;
}

const SCENARIOS: readonly Scenario[] = [
  { name: 'DATA, memory:', workload: 'data', store: 'memory', servers: 1 },
  { name: 'DATA, SQLite', workload: 'data', store: 'sqlite', servers: 1 },
  { name: 'DATA, PostgreSQL', workload: 'data', store: 'postgres', servers: 1 },
  { name: 'sessions, memory:', workload: 'session', store: 'memory', servers: 1 },
  { name: 'sessions, SQLite', workload: 'session', store: 'sqlite', servers: 1 },
  { name: 'sessions, PostgreSQL', workload: 'session', store: 'postgres', servers: 1 },
  { name: 'DATA, PostgreSQL, 2 servers', workload: 'data', store: 'postgres', servers: 2 },
  { name: 'DATA, PostgreSQL, 3 servers', workload: 'data', store: 'postgres', servers: 3 },
];

/** What each scenario is compared with (same workload, one server, SQLite). */
const REFERENCE: Readonly<Record<Workload, string>> = {
  data: 'DATA, SQLite',
  session: 'sessions, SQLite',
  helo: '',
};

interface Settings {
  readonly json: boolean;
  readonly repetitions: number;
  readonly durationMs: number;
  readonly warmupMs: number;
  readonly connections: number;
  /** Only the scenarios whose name contains this (plus their SQLite reference). */
  readonly only: string | undefined;
}

function settingsFromArgs(): Settings {
  const { values } = parseArgs({
    options: {
      json: { type: 'boolean', default: false },
      repetitions: { type: 'string', default: '1' },
      duration: { type: 'string', default: '2' },
      warmup: { type: 'string', default: '0.5' },
      connections: { type: 'string', default: '50' },
      only: { type: 'string' },
    },
  });
  const positive = (name: string, raw: string): number => {
    const value = Number(raw);
    if (!(value > 0)) throw new Error(`--${name} must be a positive number, got '${raw}'`);
    return value;
  };
  return {
    json: values.json,
    repetitions: Math.round(positive('repetitions', values.repetitions)),
    durationMs: positive('duration', values.duration) * 1000,
    warmupMs: Number(values.warmup) * 1000,
    connections: Math.round(positive('connections', values.connections)),
    only: values.only,
  };
}

/** One load per server, at the same time; the connections spread over them. */
async function measure(
  ports: readonly number[],
  workload: Workload,
  settings: Settings,
): Promise<{ throughput: number; problems: number }> {
  const plan = workloadPlan(workload, PAYLOAD_BYTES);
  const results = await Promise.all(
    ports.map((port, index) =>
      runLoad({
        host: '127.0.0.1',
        port,
        plan,
        connections:
          Math.floor(settings.connections / ports.length) +
          (index < settings.connections % ports.length ? 1 : 0),
        maxInFlight: 1,
        threads: 1,
        warmupMs: settings.warmupMs,
        durationMs: settings.durationMs,
        requests: null,
        ratePerSecond: null,
        timeoutMs: 10_000,
      }),
    ),
  );
  let throughput = 0;
  let problems = 0;
  results.forEach((result, index) => {
    throughput += throughputOf(runReport(`tcp://127.0.0.1:${ports[index]}`, plan.kind, result));
    problems += errorTotal(result.measured) + result.measured.unexpected;
  });
  return { throughput, problems };
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

async function main(): Promise<void> {
  const settings = settingsFromArgs();
  const directory = mkdtempSync(join(tmpdir(), 'helo-bench-stores-'));
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith('HELO_')),
  );
  let cluster: PostgresCluster | undefined;
  const only = settings.only;
  const chosen = SCENARIOS.filter(
    (scenario) =>
      only === undefined ||
      scenario.name.includes(only) ||
      SCENARIOS.some(
        (other) => other.name.includes(only) && REFERENCE[other.workload] === scenario.name,
      ),
  );
  const runs = new Map(chosen.map((scenario) => [scenario.name, [] as number[]]));
  let problems = 0;
  let files = 0;
  try {
    cluster = await startPostgres();
    const storeUrl = async (kind: StoreKind): Promise<string> => {
      if (kind === 'memory') return 'memory:';
      if (kind === 'sqlite') return `sqlite:${join(directory, `bench-${++files}.db`)}`;
      return cluster!.createDatabase();
    };
    for (let repetition = 0; repetition < settings.repetitions; repetition++) {
      for (const scenario of chosen) {
        if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${scenario.name}`);
        const url = await storeUrl(scenario.store);
        const servers: ChildServer[] = [];
        try {
          // One after the other: the first creates the PostgreSQL schema.
          for (let n = 0; n < scenario.servers; n++) {
            servers.push(
              await startChildServer({
                name: 'helo server',
                env,
                args: [HELO_BIN, 'server', '--port', '0', '--log-level', 'warn', '--store', url],
              }),
            );
          }
          const result = await measure(
            servers.map((server) => server.port),
            scenario.workload,
            settings,
          );
          runs.get(scenario.name)!.push(result.throughput);
          problems += result.problems;
        } finally {
          await Promise.all(servers.map((server) => server.stop()));
        }
      }
    }
  } finally {
    await cluster?.destroy();
    rmSync(directory, { recursive: true, force: true });
    if (process.stderr.isTTY) process.stderr.write('\r\x1b[K');
  }

  const results = chosen.map((scenario) => {
    const values = runs.get(scenario.name)!;
    const reference = runs.get(REFERENCE[scenario.workload])!;
    const ratios = values.map((value, index) => value / reference[index]!);
    return {
      name: scenario.name,
      unit: scenario.workload === 'session' ? 'sessions/s' : 'acks/s',
      values,
      median: median(values),
      overSqlite: median(ratios),
    };
  });
  if (settings.json) {
    process.stdout.write(`${JSON.stringify({ settings, problems, results }, null, 2)}\n`);
    return;
  }
  const lines = [
    `| scenario | ${settings.connections} connections | × SQLite |`,
    '| --- | ---: | ---: |',
    ...results.map(
      (result) =>
        `| ${result.name} | ${Math.round(result.median)} ${result.unit} | ${result.overSqlite.toFixed(2)} |`,
    ),
    '',
    `${settings.repetitions} repetition(s) of ${settings.durationMs / 1000} s (warm-up ${settings.warmupMs / 1000} s); ` +
      `errors and unexpected replies: ${problems}`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  if (problems > 0) process.exitCode = 1;
}

await main();
