/**
 * The arithmetic and the tables of `npm run bench:scaling` (bench/scaling.ts),
 * apart from the processes so that it can be tested on its own: CPU times
 * out of /proc/PID/stat and /proc/stat, medians over repetitions, ratios to
 * the server without HAProxy, and each component's share of the CPU. Pure.
 */
import { formatCount, markdownTable } from './markdown-table.js';

/** What a run measures against: one server alone, or HAProxy in front of N servers. */
export const SETUPS = ['direct', 'haproxy-1', 'haproxy-2', 'haproxy-3'] as const;
export type Setup = (typeof SETUPS)[number];

export const LOADS = ['sessions', 'data'] as const;
export type Load = (typeof LOADS)[number];

/** Whose CPU time is counted apart. `other` is the rest of the machine (other users' work). */
export const COMPONENTS = ['helo', 'haproxy', 'postgres', 'generator', 'driver', 'other'] as const;
export type Component = (typeof COMPONENTS)[number];
export type ComponentCpu = Record<Component, number>;

export function setupLabel(setup: Setup): string {
  return setup === 'direct'
    ? '1 server, no HAProxy'
    : `HAProxy + ${setup.slice(-1)} server${setup.endsWith('1') ? '' : 's'}`;
}

export function loadLabel(load: Load): string {
  return load === 'sessions' ? 'sessions/s' : 'DATA acks/s';
}

/** The CPU fields of one /proc/PID/stat line, in clock ticks. */
export interface ProcStat {
  readonly ppid: number;
  /** utime + stime: the process's own CPU time. */
  readonly own: number;
  /** cutime + cstime: its children's, once they exited and were waited for. */
  readonly children: number;
}

/**
 * Parses /proc/PID/stat. The command name (field 2) is in parentheses and
 * may hold spaces and parentheses itself, so the fields are counted from
 * the last ')'.
 */
export function parseProcStat(text: string): ProcStat {
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state): ppid is field 4, utime..cstime fields 14-17.
  const field = (number: number): number => Number(fields[number - 3]);
  return {
    ppid: field(4),
    own: field(14) + field(15),
    children: field(16) + field(17),
  };
}

/** Busy clock ticks of the whole machine (all CPUs) from /proc/stat's first line. */
export function machineBusyTicks(procStat: string): number {
  const line = procStat.split('\n', 1)[0]!;
  const values = line.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal (guest is inside user already)
  const [user = 0, nice = 0, system = 0, , , irq = 0, softirq = 0, steal = 0] = values;
  return user + nice + system + irq + softirq + steal;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle]! : (sorted[middle - 1]! + sorted[middle]!) / 2;
}

/** One `helo bench` run against one setup. */
export interface Measurement {
  readonly setup: Setup;
  readonly load: Load;
  readonly repetition: number;
  /** Sessions/s or acknowledged DATA/s over the measured seconds (`helo bench`'s figure). */
  readonly throughput: number;
  /** Sessions or acknowledgements over the whole run, warm-up included (what the CPU paid for). */
  readonly operations: number;
  /** From starting the generator to its exit: the window the CPU times cover. */
  readonly wallSeconds: number;
  /** CPU seconds per component over that window. */
  readonly cpuSeconds: ComponentCpu;
  /** Group commits and the records they carried, over every server (helo_commit_batch_size). */
  readonly commits: number;
  readonly committedRecords: number;
  /** Errors and unexpected replies (should be 0). */
  readonly problems: number;
}

export interface Cell {
  readonly setup: Setup;
  readonly load: Load;
  readonly throughputs: number[];
  readonly median: number;
  /** median / the direct server's median for the same load. */
  readonly overDirect: number;
  /** Median CPUs kept busy per component (CPU seconds / wall seconds). */
  readonly cores: ComponentCpu;
  /** Median CPU microseconds per operation per component (`other` left out: not ours). */
  readonly microsPerOperation: Omit<ComponentCpu, 'other'>;
  /** Median CPU microseconds per operation of all our components together. */
  readonly microsAllOurs: number;
  /**
   * The direct server's microsAllOurs over this one's: the throughput ratio a
   * machine whose CPUs are all ours and all busy would show, whatever other
   * users' work took during the runs.
   */
  readonly cpuOverDirect: number;
  /** Median records per group commit: how many acknowledgements shared one commit. */
  readonly recordsPerCommit: number;
  readonly problems: number;
}

export function summarize(measurements: readonly Measurement[]): Cell[] {
  const cells: Cell[] = [];
  for (const load of LOADS) {
    const of = (setup: Setup) =>
      measurements.filter((item) => item.load === load && item.setup === setup);
    const direct = median(of('direct').map((item) => item.throughput));
    const directMicros = median(of('direct').map(microsOfOurs));
    for (const setup of SETUPS) {
      const runs = of(setup);
      if (runs.length === 0) continue;
      const throughputs = runs.map((item) => item.throughput);
      const perComponent = <T extends Component>(
        components: readonly T[],
        value: (run: Measurement, component: T) => number,
      ) =>
        Object.fromEntries(
          components.map((component) => [
            component,
            median(runs.map((run) => value(run, component))),
          ]),
        ) as Record<T, number>;
      cells.push({
        setup,
        load,
        throughputs,
        median: median(throughputs),
        overDirect: median(throughputs) / direct,
        cores: perComponent(COMPONENTS, (run, component) =>
          run.wallSeconds > 0 ? run.cpuSeconds[component] / run.wallSeconds : 0,
        ),
        microsPerOperation: perComponent(
          COMPONENTS.filter((component) => component !== 'other'),
          (run, component) =>
            run.operations > 0 ? (run.cpuSeconds[component] * 1e6) / run.operations : 0,
        ),
        microsAllOurs: median(runs.map(microsOfOurs)),
        cpuOverDirect: directMicros / median(runs.map(microsOfOurs)),
        recordsPerCommit: median(
          runs.map((run) => (run.commits > 0 ? run.committedRecords / run.commits : 0)),
        ),
        problems: runs.reduce((sum, run) => sum + run.problems, 0),
      });
    }
  }
  return cells;
}

/** CPU microseconds per operation of every component but `other`, in one run. */
function microsOfOurs(run: Measurement): number {
  const seconds = COMPONENTS.filter((component) => component !== 'other').reduce(
    (sum, component) => sum + run.cpuSeconds[component],
    0,
  );
  return run.operations > 0 ? (seconds * 1e6) / run.operations : 0;
}

/** The component that used the most CPU in a cell (the machine's other work left out). */
export function busiest(cell: Cell): Exclude<Component, 'other'> {
  const ours = COMPONENTS.filter((component) => component !== 'other');
  return ours.reduce((best, component) =>
    cell.cores[component] > cell.cores[best] ? component : best,
  ) as Exclude<Component, 'other'>;
}

function spread(values: readonly number[]): string {
  return `${formatCount(Math.min(...values))}–${formatCount(Math.max(...values))}`;
}

/**
 * The throughput table: one row per setup, both loads; "by CPU" is
 * cpuOverDirect, the ratio that does not depend on other users' load.
 */
export function throughputTable(cells: readonly Cell[]): string {
  const cellOf = (setup: Setup, load: Load) =>
    cells.find((cell) => cell.setup === setup && cell.load === load);
  const rows = SETUPS.filter((setup) => cells.some((cell) => cell.setup === setup)).map((setup) => {
    const columns = LOADS.flatMap((load) => {
      const cell = cellOf(setup, load);
      return cell === undefined
        ? ['', '', '', '']
        : [
            formatCount(cell.median),
            spread(cell.throughputs),
            `${cell.overDirect.toFixed(2)}×`,
            `${cell.cpuOverDirect.toFixed(2)}×`,
          ];
    });
    return [setupLabel(setup), ...columns];
  });
  return markdownTable(
    [
      'setup',
      'sessions/s',
      '(min–max)',
      '× direct',
      'by CPU',
      'DATA acks/s',
      '(min–max)',
      '× direct',
      'by CPU',
    ],
    rows,
    ['left', ...Array.from({ length: 8 }, () => 'right' as const)],
  );
}

/** The CPU table: CPUs kept busy by each component, per load and setup. */
export function cpuTable(cells: readonly Cell[]): string {
  const rows = cells.map((cell) => {
    const total = COMPONENTS.reduce((sum, component) => sum + cell.cores[component], 0);
    return [
      loadLabel(cell.load).replace('/s', ''),
      setupLabel(cell.setup),
      ...COMPONENTS.map((component) => cell.cores[component].toFixed(2)),
      total.toFixed(2),
      busiest(cell),
    ];
  });
  return markdownTable(['load', 'setup', ...COMPONENTS, 'total', 'busiest of ours'], rows, [
    'left',
    'left',
    ...COMPONENTS.map(() => 'right' as const),
    'right',
    'left',
  ]);
}

/**
 * CPU microseconds per session or acknowledgement, per component of ours and
 * in all, and the records each group commit carried.
 */
export function perOperationTable(cells: readonly Cell[]): string {
  const ours = COMPONENTS.filter((component) => component !== 'other');
  const rows = cells.map((cell) => {
    const micros = ours.map((component) => cell.microsPerOperation[component]);
    return [
      loadLabel(cell.load).replace('/s', ''),
      setupLabel(cell.setup),
      ...micros.map((value) => formatCount(value)),
      formatCount(micros.reduce((sum, value) => sum + value, 0)),
      cell.recordsPerCommit.toFixed(1),
    ];
  });
  return markdownTable(['load', 'setup', ...ours, 'all of ours', 'records/commit'], rows, [
    'left',
    'left',
    ...ours.map(() => 'right' as const),
    'right',
    'right',
  ]);
}
