/**
 * Pinning the server and the load generator to separate CPUs with
 * `taskset`, so that they do not take each other's time slices.
 *
 * The CPUs this process may use are split in two halves: the first for the
 * server (and every process it starts: fork children, cluster workers), the
 * second for this process and its load threads. Linux gives a new process
 * or thread the affinity of the thread that creates it, so a server is
 * pinned by pinning this process to the server half just while it is
 * spawned (startChildServer spawns synchronously) and back to the load half
 * right after.
 *
 * Pinning only pays with enough CPUs: on a 2-CPU machine it would leave
 * a 2-worker cluster a single CPU, so `auto` pins from 4 CPUs on.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export type PinSetting = 'auto' | 'on' | 'off';

export interface CpuPlan {
  /** CPU lists for taskset (`0-1`, `2,3`), or null when not pinned. */
  readonly serverCpus: string | null;
  readonly loadCpus: string | null;
  /** One sentence for the report: pinned how, or why not. */
  readonly description: string;
}

/** The CPUs this process may run on, from /proc/self/status (null if unknown). */
export function allowedCpus(): number[] | null {
  let status: string;
  try {
    status = readFileSync('/proc/self/status', 'utf8');
  } catch {
    return null;
  }
  const list = /^Cpus_allowed_list:\s*(\S+)/m.exec(status)?.[1];
  return list === undefined ? null : expandCpuList(list);
}

/** `0-2,5` -> [0, 1, 2, 5]. */
export function expandCpuList(list: string): number[] {
  return list.split(',').flatMap((part) => {
    const [from, to] = part.split('-').map(Number);
    if (from === undefined || Number.isNaN(from)) return [];
    const last = to === undefined || Number.isNaN(to) ? from : to;
    return Array.from({ length: last - from + 1 }, (_, index) => from + index);
  });
}

function hasTaskset(): boolean {
  try {
    execFileSync('taskset', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function planCpus(setting: PinSetting, cpus = allowedCpus()): CpuPlan {
  const unpinned = (why: string): CpuPlan => ({
    serverCpus: null,
    loadCpus: null,
    description: `Not pinned: ${why}; server and load generator share every CPU.`,
  });
  if (setting === 'off') return unpinned('pinning turned off (--pin off)');
  if (cpus === null) return unpinned('the allowed CPUs are unknown here (no /proc)');
  if (cpus.length < 2) return unpinned('only one CPU');
  if (setting === 'auto' && cpus.length < 4) {
    return unpinned(
      `only ${cpus.length} CPUs, and pinning would leave the server (a 2-worker cluster) one CPU`,
    );
  }
  if (!hasTaskset()) return unpinned('taskset is not installed');
  const half = Math.floor(cpus.length / 2);
  const serverCpus = cpus.slice(0, half).join(',');
  const loadCpus = cpus.slice(half).join(',');
  return {
    serverCpus,
    loadCpus,
    description:
      `Pinned with taskset: the server (and its children) on ${cpuWord(half)} ${serverCpus}, ` +
      `the load generator on ${cpuWord(cpus.length - half)} ${loadCpus}.`,
  };
}

function cpuWord(count: number): string {
  return count === 1 ? 'CPU' : 'CPUs';
}

/** Pins every thread of this process to `cpus`. */
function pinSelf(cpus: string): void {
  execFileSync('taskset', ['-a', '-p', '-c', cpus, String(process.pid)], { stdio: 'ignore' });
}

/** Puts this process (and so the load threads it starts later) on the load half. */
export function pinLoadGenerator(plan: CpuPlan): void {
  if (plan.loadCpus !== null) pinSelf(plan.loadCpus);
}

/**
 * Calls `spawn` (which must start its process synchronously) with this
 * process on the server half, so that the new process inherits it.
 */
export function spawnPinned<T>(plan: CpuPlan, spawn: () => T): T {
  if (plan.serverCpus === null || plan.loadCpus === null) return spawn();
  pinSelf(plan.serverCpus);
  try {
    return spawn();
  } finally {
    pinSelf(plan.loadCpus);
  }
}
