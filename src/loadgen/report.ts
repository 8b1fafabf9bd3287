/**
 * The report of `helo bench`: one plain object (printed as is with
 * `--json`) and the table people read, made from that same object so the
 * two never disagree. Pure: no I/O.
 */
import type { CountsSnapshot } from './load-counts.js';
import { errorTotal } from './load-counts.js';
import type { PlanKind } from './load-plan.js';
import { type LatencySummary, summarizeLatency } from './latency.js';
import { type GeneratorCpu, generatorLimits, type LoadResult } from './run-load.js';

/** A ratio from which the target may be limited by the load generator rather than by itself. */
const NEAR_CEILING = 0.9;

/** How the load was run: the flags, resolved. */
export interface BenchSettings {
  readonly target: string;
  /** `helo`, `data`, `session`, `request` or `script`. */
  readonly workload: string;
  readonly description: string;
  readonly kind: PlanKind;
  readonly connections: number;
  readonly pipeline: number;
  readonly threads: number;
  readonly durationSeconds: number | null;
  readonly requests: number | null;
  readonly warmupSeconds: number;
  readonly rate: number | null;
  readonly timeoutSeconds: number;
}

/** What one load against one server measured. */
export interface RunReport extends CountsSnapshot {
  readonly target: string;
  readonly errorCount: number;
  readonly elapsedSeconds: number;
  /** Answered requests per second. */
  readonly requestsPerSecond: number;
  /** Completed sessions per second; null for a steady plan. */
  readonly sessionsPerSecond: number | null;
  /** Per request, in microseconds (from the scheduled send time with --rate). */
  readonly latencyUs: LatencySummary | null;
  /** Per session, connect to last reply, in microseconds; null for a steady plan. */
  readonly sessionLatencyUs: LatencySummary | null;
  /** What the warm-up counted (discarded from everything above). */
  readonly warmup: CountsSnapshot;
  /** The load generator's own CPU use while measuring (run-load.ts). */
  readonly generatorCpu: GeneratorCpu;
}

export interface BenchReport {
  readonly settings: BenchSettings;
  readonly result: RunReport;
  /** The same load against the baseline server, with --ceiling. */
  readonly ceiling: RunReport | null;
  /** Target throughput / ceiling throughput (sessions/s for a session plan). */
  readonly ratio: number | null;
}

export function runReport(target: string, kind: PlanKind, result: LoadResult): RunReport {
  const seconds = result.elapsedMs / 1000;
  const perSecond = (count: number): number =>
    seconds > 0 ? Math.round((count / seconds) * 10) / 10 : 0;
  const isSession = kind === 'session';
  return {
    target,
    ...result.measured,
    errorCount: errorTotal(result.measured),
    elapsedSeconds: Math.round(seconds * 1000) / 1000,
    requestsPerSecond: perSecond(result.measured.replies),
    sessionsPerSecond: isSession ? perSecond(result.measured.sessions) : null,
    latencyUs: summarizeLatency(result.requestLatency),
    sessionLatencyUs: isSession ? summarizeLatency(result.sessionLatency) : null,
    warmup: result.warmup,
    generatorCpu: result.generatorCpu,
  };
}

/**
 * A warning when the load generator used (nearly) all the CPU it could:
 * then it, not the server, set the pace, and the figure is a lower bound.
 */
function generatorWarning(run: RunReport): string | null {
  const cpu = run.generatorCpu;
  if (!generatorLimits(cpu)) return null;
  return (
    `warning: the load generator used ${Math.round(cpu.share * 100)}% of its ` +
    `${cpu.cpus === 1 ? 'CPU' : `${cpu.cpus} CPUs`} while measuring ${run.target}: it may be the ` +
    `bottleneck, so read ${run.target}'s throughput as a lower bound.`
  );
}

/** The throughput a plan is judged by: sessions/s for sessions, requests/s otherwise. */
export function throughputOf(run: RunReport): number {
  return run.sessionsPerSecond ?? run.requestsPerSecond;
}

export function benchReport(
  settings: BenchSettings,
  result: RunReport,
  ceiling: RunReport | null,
): BenchReport {
  const ratio =
    ceiling !== null && throughputOf(ceiling) > 0
      ? Math.round((throughputOf(result) / throughputOf(ceiling)) * 1000) / 1000
      : null;
  return { settings, result, ceiling, ratio };
}

/** The human table for stdout. */
export function formatReport(report: BenchReport): string {
  const { settings, result, ceiling } = report;
  const runs = ceiling === null ? [result] : [result, ceiling];
  const rows: string[][] = [];
  const row = (label: string, cell: (run: RunReport) => string): void => {
    rows.push([label, ...runs.map(cell)]);
  };
  if (ceiling !== null) rows.push(['', 'target', 'ceiling']);
  row('requests', (run) => count(run.requests));
  row('replies', (run) => count(run.replies));
  for (const code of unionKeys(runs.map((run) => run.repliesByCode))) {
    row(`  ${code}`, (run) => count(run.repliesByCode[code] ?? 0));
  }
  row('unexpected', (run) => count(run.unexpected));
  row('unanswered', (run) => count(run.unanswered));
  row('errors', (run) => count(run.errorCount));
  for (const kind of unionKeys(runs.map((run) => run.errors))) {
    row(`  ${kind}`, (run) => count(run.errors[kind] ?? 0));
  }
  if (settings.kind === 'session') {
    row('sessions', (run) => count(run.sessions));
    row('sessions/s', (run) => count(Math.round(run.sessionsPerSecond ?? 0)));
  }
  row('requests/s', (run) => count(Math.round(run.requestsPerSecond)));
  latencyRows('latency', (run) => run.latencyUs);
  if (settings.kind === 'session') latencyRows('session latency', (run) => run.sessionLatencyUs);

  function latencyRows(title: string, pick: (run: RunReport) => LatencySummary | null): void {
    const percentiles = [
      ['p50', 'p50'],
      ['p90', 'p90'],
      ['p99', 'p99'],
      ['p99.9', 'p999'],
      ['max', 'max'],
    ] as const;
    for (const [label, field] of percentiles) {
      row(`${title} ${label}`, (run) => {
        const summary = pick(run);
        return summary === null ? '-' : `${(summary[field] / 1000).toFixed(3)} ms`;
      });
    }
  }

  const lines = [
    `helo bench ${settings.target}: ${settings.description}`,
    `${describeLoad(settings)}; measured ${result.elapsedSeconds.toFixed(2)} s` +
      (settings.warmupSeconds > 0 ? ` after a ${settings.warmupSeconds} s warm-up` : ''),
    '',
    ...alignColumns(rows),
  ];
  if (ceiling !== null) {
    lines.push(
      '',
      `ceiling: the same load against the baseline server (${ceiling.target}), in this run`,
      report.ratio === null
        ? 'target/ceiling: - (the baseline answered nothing)'
        : `target/ceiling: ${report.ratio.toFixed(2)} (${settings.kind === 'session' ? 'sessions/s' : 'requests/s'})`,
    );
    if (report.ratio !== null && report.ratio >= NEAR_CEILING) {
      lines.push(
        'The target runs within 10% of the ceiling: the load generator (or this machine) may be',
        "what limits it; read the target's throughput as a lower bound.",
      );
    }
  }
  const warnings = runs.flatMap((run) => generatorWarning(run) ?? []);
  if (warnings.length > 0) lines.push('', ...warnings);
  const warmup = result.warmup;
  if (settings.warmupSeconds > 0) {
    lines.push(
      '',
      `warm-up (not counted above): ${count(warmup.requests)} requests, ` +
        `${count(warmup.replies)} replies, ` +
        (settings.kind === 'session' ? `${count(warmup.sessions)} sessions, ` : '') +
        `${count(errorTotal(warmup))} errors`,
    );
  }
  return lines.join('\n') + '\n';
}

function describeLoad(settings: BenchSettings): string {
  const parts = [
    settings.rate === null
      ? 'closed loop'
      : `open loop at ${count(settings.rate)} ${settings.kind === 'session' ? 'sessions' : 'requests'}/s`,
    `${count(settings.connections)} connection${settings.connections === 1 ? '' : 's'}`,
    `pipeline ${settings.pipeline}`,
    `${settings.threads} thread${settings.threads === 1 ? '' : 's'}`,
  ];
  if (settings.requests !== null) {
    parts.push(
      `${count(settings.requests)} ${settings.kind === 'session' ? 'sessions' : 'requests'}`,
    );
  }
  return parts.join(', ');
}

function count(value: number): string {
  return value.toLocaleString('en-US');
}

function unionKeys(records: readonly Readonly<Record<string, number>>[]): string[] {
  return [...new Set(records.flatMap((record) => Object.keys(record)))].sort((a, b) =>
    a.localeCompare(b),
  );
}

/** Left-aligned labels, right-aligned numbers. */
function alignColumns(rows: readonly string[][]): string[] {
  const columns = Math.max(...rows.map((cells) => cells.length));
  const widths = Array.from({ length: columns }, (_, column) =>
    Math.max(...rows.map((cells) => (cells[column] ?? '').length)),
  );
  return rows.map((cells) =>
    cells
      .map((cell, column) =>
        column === 0 ? cell.padEnd(widths[0]! + 2) : cell.padStart(widths[column]! + 2),
      )
      .join('')
      .trimEnd(),
  );
}
