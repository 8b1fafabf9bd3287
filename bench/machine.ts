/**
 * The machine a benchmark ran on, for the reports: CPU model and count,
 * memory, Node.js, OS, open-file limit and date. Read from /proc where
 * Linux has it; other systems get what node:os knows.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, release, totalmem, type as osType } from 'node:os';

export interface MachineInfo {
  readonly cpuModel: string;
  /** CPUs this process may run on. */
  readonly cpus: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly os: string;
  /** The soft limit on open files, or null where /proc/self/limits does not exist. */
  readonly openFilesLimit: number | null;
  /** ISO date and time (UTC) of the measurement. */
  readonly date: string;
  /** The 1-minute load average when the measurement began: others' work shows here. */
  readonly loadAverage: number;
  /** The helo commit measured (`abc1234`, `+ changes` when the tree was not clean), or null. */
  readonly commit: string | null;
}

function readOrNull(path: string): string | null {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
}

export function describeMachine(): MachineInfo {
  const cpuinfo = readOrNull('/proc/cpuinfo');
  const fromProc = cpuinfo === null ? null : /^model name\s*:\s*(.+)$/m.exec(cpuinfo)?.[1];
  const osRelease = readOrNull('/etc/os-release');
  const pretty = osRelease === null ? null : /^PRETTY_NAME="?([^"\n]+)"?$/m.exec(osRelease)?.[1];
  return {
    cpuModel: (fromProc ?? cpus()[0]?.model ?? 'unknown').trim(),
    cpus: availableParallelism(),
    memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    os: `${pretty ?? osType()}, kernel ${release()}`,
    openFilesLimit: openFilesLimit(),
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    loadAverage: loadAverage(),
    commit: gitCommit(),
  };
}

function gitCommit(): string | null {
  const git = (...args: string[]): string =>
    execFileSync('git', args, {
      cwd: new URL('../..', import.meta.url),
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    }).trim();
  try {
    const commit = git('rev-parse', '--short', 'HEAD');
    return git('status', '--porcelain', '--untracked-files=no') === ''
      ? commit
      : `${commit} + uncommitted changes`;
  } catch {
    return null;
  }
}

/** The soft `ulimit -n` of this process (children inherit it), from /proc/self/limits. */
export function openFilesLimit(): number | null {
  const limits = readOrNull('/proc/self/limits');
  const soft = limits === null ? null : /^Max open files\s+(\S+)/m.exec(limits)?.[1];
  if (soft === undefined || soft === null) return null;
  return soft === 'unlimited' ? Infinity : Number(soft);
}

/** The 1-minute load average, to two decimals. */
export function loadAverage(): number {
  return Math.round((loadavg()[0] ?? 0) * 100) / 100;
}

/** One Markdown line per fact; `loadAtEnd`: the load average when the measurement ended. */
export function machineLines(machine: MachineInfo, loadAtEnd: number): string[] {
  return [
    `- CPU: ${machine.cpuModel}, ${machine.cpus} CPU${machine.cpus === 1 ? '' : 's'} available`,
    `- memory: ${machine.memoryGiB} GiB; open files (ulimit -n): ${machine.openFilesLimit ?? 'unknown'}`,
    `- Node.js ${machine.node} on ${machine.os}` +
      (machine.commit ? `; helo at commit ${machine.commit}` : ''),
    `- measured ${machine.date}; load average (1 min) ${machine.loadAverage} at the start, ` +
      `${loadAtEnd} at the end (others' work shows here, and so do the benchmark's own processes)`,
  ];
}
