/**
 * `helo bench [ADDRESS]`: a load generator for helo servers and any other
 * line-protocol server (docs/BENCH.md). Thin over src/loadgen: this file
 * turns flags into a LoadPlan and LoadOptions, checks that the target is
 * there, runs the load (and with --ceiling the same load against the
 * baseline server), and prints the report.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { startBaselineServer, replyScriptFor } from '../loadgen/baseline.js';
import { parseEscapes } from '../loadgen/escapes.js';
import type { LoadPlan } from '../loadgen/load-plan.js';
import { probeTarget } from '../loadgen/probe.js';
import {
  type BenchSettings,
  benchReport,
  formatReport,
  type RunReport,
  runReport,
} from '../loadgen/report.js';
import { type LoadOptions, type LoadProgress, runLoad } from '../loadgen/run-load.js';
import { parseScript } from '../loadgen/script.js';
import { defaultThreadCount } from '../loadgen/thread-shares.js';
import { requestPlan, type Workload, WORKLOADS, workloadPlan } from '../loadgen/workloads.js';
import {
  ADDRESS_FLAGS,
  type CommandHelp,
  formatHelp,
  hostFlag,
  intFlag,
  type ParsedFlags,
  parseFlags,
  secondsFlag,
  UsageError,
} from './args.js';
import { parseAddress } from './address.js';
import { formatHostPort } from '../net/host-port.js';
import { DEFAULT_CLIENT_TIMEOUT_MS, DEFAULT_HOST, DEFAULT_PORT } from '../defaults.js';
import { ConnectError } from '../errors.js';

const DEFAULTS = Object.freeze({
  connections: 50,
  pipeline: 1,
  durationMs: 10_000,
  warmupMs: 1_000,
  workload: 'helo' as Workload,
  size: 100,
  timeoutMs: DEFAULT_CLIENT_TIMEOUT_MS,
});

const HELP: CommandHelp = {
  usage: 'helo bench [ADDRESS] [flags]',
  summary:
    'Load-test a helo server, or any line-protocol server: throughput, replies by code, errors, and latency percentiles.',
  flags: {
    ...ADDRESS_FLAGS,
    connections: {
      type: 'string',
      valueName: 'N',
      default: String(DEFAULTS.connections),
      description: 'connections kept busy at once',
    },
    pipeline: {
      type: 'string',
      valueName: 'D',
      default: String(DEFAULTS.pipeline),
      description: 'requests in flight per connection',
    },
    duration: {
      type: 'string',
      valueName: 'SECONDS',
      default: '10',
      description: 'how long to measure (after the warm-up)',
    },
    requests: {
      type: 'string',
      valueName: 'N',
      description: 'measure exactly N requests (sessions, for session loads) instead',
    },
    warmup: {
      type: 'string',
      valueName: 'SECONDS',
      default: '1',
      description: 'load run first and not counted; 0 for none',
    },
    workload: {
      type: 'string',
      valueName: 'W',
      default: DEFAULTS.workload,
      description: `${WORKLOADS.join(', ')}: what each connection does (see below)`,
    },
    size: {
      type: 'string',
      valueName: 'BYTES',
      default: String(DEFAULTS.size),
      description: 'payload size of the data and session workloads',
    },
    request: {
      type: 'string',
      valueName: 'TEXT',
      description: "any protocol: send TEXT (escapes \\r \\n \\t \\\\ \\xHH), e.g. 'PING\\r\\n'",
    },
    expect: {
      type: 'string',
      valueName: 'TEXT',
      description: "with --request: the exact reply, e.g. '+PONG\\r\\n' (default: any line)",
    },
    script: {
      type: 'string',
      valueName: 'FILE',
      description: 'any protocol: a session of send/expect steps (see docs/BENCH.md)',
    },
    rate: {
      type: 'string',
      valueName: 'R',
      description: 'open loop: R requests (or sessions) per second in total, on a fixed schedule',
    },
    threads: {
      type: 'string',
      valueName: 'T',
      description:
        'worker threads (default: half the CPUs for a loopback target, all for another host; at most one per connection)',
    },
    timeout: {
      type: 'string',
      valueName: 'SECONDS',
      default: '10',
      description: 'a connection or reply taking longer is an error; 0 waits forever',
    },
    wait: {
      type: 'string',
      valueName: 'SECONDS',
      default: '0',
      description: 'keep retrying the first connection this long while the server is not up yet',
    },
    ceiling: {
      type: 'boolean',
      description: 'also run the same load against a trivial baseline server, and print the ratio',
    },
    json: { type: 'boolean', description: 'print one JSON object on stdout instead of the table' },
  },
  notes: [
    'ADDRESS is tcp://HOST:PORT or HOST:PORT; it wins over --host and --port.',
    '',
    'Workloads: helo sends HELO; data sends one HELO bench per connection, then',
    'DATA <payload> inline; session connects, sends HELO bench, DATA <payload>, QUIT,',
    'waits for the close, and starts again (counted in sessions). --request/--expect and',
    '--script drive any line protocol; a reply that differs from the expected bytes is',
    'counted as unexpected.',
    '',
    'Closed loop by default: each connection sends its next requests as soon as replies',
    'come. With --rate, requests are sent on a fixed schedule whatever the replies, and',
    'latency is measured from when each one was due (a stalled server is not hidden).',
    '',
    'Output: a table on stdout (or --json); a progress line on stderr when it is a terminal.',
    'Ctrl-C stops early and prints what was measured.',
    '',
    'Exit status: 0 when the load ran (errors are reported, not fatal); 1 when the target',
    'cannot be reached or answered nothing; 2 for a bad command line.',
  ].join('\n'),
};

/** Everything the flags ask for, checked. */
interface BenchRequest {
  readonly workload: string;
  readonly plan: LoadPlan;
  /** True for helo's own workloads, which the baseline answers natively. */
  readonly isHeloWorkload: boolean;
  readonly load: Omit<LoadOptions, 'onProgress' | 'signal'>;
  readonly waitMs: number;
  readonly ceiling: boolean;
  readonly json: boolean;
}

export async function run(argv: string[]): Promise<number> {
  const flags = parseFlags(HELP, argv);
  if (flags.help) {
    process.stdout.write(formatHelp(HELP));
    return 0;
  }
  const request = benchRequestFromFlags(flags);
  const { load } = request;
  const target = `tcp://${formatHostPort(load.host, load.port)}`;
  // A wrong address is one line and exit 1, not a report full of errors.
  await probeTarget(
    load.host,
    load.port,
    load.timeoutMs || DEFAULT_CLIENT_TIMEOUT_MS,
    request.waitMs,
  );

  const stopper = new AbortController();
  const onInterrupt = (): void => stopper.abort();
  process.once('SIGINT', onInterrupt);
  try {
    const result = runReport(
      target,
      request.plan.kind,
      await measure(load, stopper.signal, 'target'),
    );
    let ceiling: RunReport | null = null;
    if (request.ceiling && !stopper.signal.aborted) {
      const baseline = await startBaselineServer(
        request.isHeloWorkload ? null : replyScriptFor(request.plan),
      );
      try {
        const options = { ...load, host: DEFAULT_HOST, port: baseline.port };
        ceiling = runReport(
          `tcp://${formatHostPort(DEFAULT_HOST, baseline.port)}`,
          request.plan.kind,
          await measure(options, stopper.signal, 'ceiling'),
        );
      } finally {
        await baseline.stop();
      }
    }
    const report = benchReport(settingsOf(request, target), result, ceiling);
    process.stdout.write(
      request.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report),
    );
    if (result.replies === 0 && result.sessions === 0) {
      const errors = Object.entries(result.errors)
        .map(([kind, count]) => `${kind} ×${count}`)
        .join(', ');
      throw new ConnectError(
        `${target} answered no request${errors ? ` (errors: ${errors})` : ''}`,
      );
    }
    return 0;
  } finally {
    process.off('SIGINT', onInterrupt);
  }
}

async function measure(
  options: BenchRequest['load'],
  signal: AbortSignal,
  label: string,
): Promise<Awaited<ReturnType<typeof runLoad>>> {
  const progress = process.stderr.isTTY ? new ProgressLine(label) : null;
  try {
    return await runLoad({
      ...options,
      signal,
      ...(progress ? { onProgress: (update: LoadProgress) => progress.show(update) } : {}),
    });
  } finally {
    progress?.clear();
  }
}

/** `target  measuring 4.0 s  123,456 replies/s  0 errors`, rewritten in place on stderr. */
class ProgressLine {
  readonly #label: string;
  #lastReplies = 0;
  #lastAt = 0;

  constructor(label: string) {
    this.#label = label;
  }

  show(update: LoadProgress): void {
    const seconds = (update.elapsedMs - this.#lastAt) / 1000;
    const rate = seconds > 0 ? Math.round((update.replies - this.#lastReplies) / seconds) : 0;
    this.#lastReplies = update.replies;
    this.#lastAt = update.elapsedMs;
    process.stderr.write(
      `\r\x1b[K${this.#label}  ${update.phase} ${(update.elapsedMs / 1000).toFixed(1)} s  ` +
        `${rate.toLocaleString('en-US')} replies/s  ${update.errors.toLocaleString('en-US')} errors`,
    );
  }

  clear(): void {
    process.stderr.write('\r\x1b[K');
  }
}

function benchRequestFromFlags(flags: ParsedFlags): BenchRequest {
  const values = flags.values;
  if (flags.positionals.length > 1) {
    throw new UsageError(`expected at most one ADDRESS, got '${flags.positionals.join(' ')}'`);
  }
  const port = intFlag(values, 'port', DEFAULT_PORT, 1, 65535);
  const address = flags.positionals[0];
  const parsed = address === undefined ? null : parseAddress(address, port);
  if (parsed !== null && parsed.transport !== 'tcp') {
    throw new UsageError(`only tcp:// addresses can be benchmarked, got '${address}'`);
  }
  const target =
    parsed !== null && 'host' in parsed
      ? { host: parsed.host, port: parsed.port }
      : { host: hostFlag(values), port };

  const connections = intFlag(values, 'connections', DEFAULTS.connections, 1, 100_000);
  const pipeline = intFlag(values, 'pipeline', DEFAULTS.pipeline, 1, 10_000);
  const hasDuration = typeof values.duration === 'string';
  const hasRequests = typeof values.requests === 'string';
  if (hasDuration && hasRequests) {
    throw new UsageError('give --duration or --requests, not both');
  }
  const requests = hasRequests ? intFlag(values, 'requests', 0, 1, Number.MAX_SAFE_INTEGER) : null;
  const durationMs =
    requests === null ? secondsFlag(values, 'duration', DEFAULTS.durationMs) : null;
  if (durationMs === 0) throw new UsageError('--duration must be more than 0 seconds');
  const warmupMs = secondsFlag(values, 'warmup', DEFAULTS.warmupMs);
  const timeoutMs = secondsFlag(values, 'timeout', DEFAULTS.timeoutMs);
  const waitMs = secondsFlag(values, 'wait', 0);
  const ratePerSecond = rateFlag(values);
  const { workload, plan } = planFromFlags(values);
  const threads = intFlag(
    values,
    'threads',
    defaultThreadCount(target.host, connections),
    1,
    Math.max(1, availableParallelism() * 4),
  );
  return {
    workload,
    plan,
    isHeloWorkload: (WORKLOADS as readonly string[]).includes(workload),
    load: {
      host: target.host,
      port: target.port,
      plan,
      connections,
      maxInFlight: pipeline,
      threads: Math.min(threads, connections),
      warmupMs,
      durationMs,
      requests,
      ratePerSecond,
      timeoutMs,
    },
    waitMs,
    ceiling: values.ceiling === true,
    json: values.json === true,
  };
}

function planFromFlags(values: ParsedFlags['values']): { workload: string; plan: LoadPlan } {
  const workloadFlag = typeof values.workload === 'string' ? values.workload : undefined;
  const request = typeof values.request === 'string' ? values.request : undefined;
  const expect = typeof values.expect === 'string' ? values.expect : undefined;
  const script = typeof values.script === 'string' ? values.script : undefined;
  const hasSize = typeof values.size === 'string';
  const generic = [request !== undefined && '--request', script !== undefined && '--script'];
  const chosen = [workloadFlag !== undefined && '--workload', ...generic].filter(Boolean);
  if (chosen.length > 1) throw new UsageError(`give only one of ${chosen.join(', ')}`);
  if (expect !== undefined && request === undefined) {
    throw new UsageError('--expect goes with --request');
  }
  if (hasSize && (request !== undefined || script !== undefined)) {
    throw new UsageError('--size applies to the data and session workloads only');
  }
  if (request !== undefined) {
    const plan = requestPlan(
      parseEscapes(request),
      expect === undefined ? null : parseEscapes(expect),
    );
    return { workload: 'request', plan };
  }
  if (script !== undefined) {
    let text: string;
    try {
      text = readFileSync(script, 'utf8');
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code ?? String(error);
      throw new UsageError(`cannot read --script ${script} (${code})`);
    }
    return { workload: 'script', plan: parseScript(text, script) };
  }
  const workload = workloadFlag ?? DEFAULTS.workload;
  if (!(WORKLOADS as readonly string[]).includes(workload)) {
    throw new UsageError(`--workload must be one of ${WORKLOADS.join(', ')}, got '${workload}'`);
  }
  if (hasSize && workload === 'helo') {
    throw new UsageError('--size applies to the data and session workloads only');
  }
  const size = intFlag(values, 'size', DEFAULTS.size, 1, 1024 * 1024);
  return { workload, plan: workloadPlan(workload as Workload, size) };
}

function rateFlag(values: ParsedFlags['values']): number | null {
  const raw = values.rate;
  if (typeof raw !== 'string') return null;
  if (!/^\d+(\.\d+)?$/.test(raw.trim()) || !(Number(raw) > 0)) {
    throw new UsageError(`--rate must be a positive number of requests per second, got '${raw}'`);
  }
  return Number(raw);
}

function settingsOf(request: BenchRequest, target: string): BenchSettings {
  const { load } = request;
  return {
    target,
    workload: request.workload,
    description: request.plan.description,
    kind: request.plan.kind,
    connections: load.connections,
    pipeline: load.maxInFlight,
    threads: load.threads,
    durationSeconds: load.durationMs === null ? null : load.durationMs / 1000,
    requests: load.requests,
    warmupSeconds: load.warmupMs / 1000,
    rate: load.ratePerSecond,
    timeoutSeconds: load.timeoutMs / 1000,
  };
}
