/**
 * What the kernel says about processes (read from /proc, Linux only): which
 * are the children of a process, which belong to a process group. Used to
 * check that fork and cluster modes start the processes they say they do
 * and leave none behind.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

interface ProcessStat {
  readonly pid: number;
  readonly ppid: number;
  readonly pgid: number;
  readonly state: string;
}

function readStat(pid: number): ProcessStat | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name is in parentheses and may itself contain spaces.
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
    return { pid, state: fields[0]!, ppid: Number(fields[1]), pgid: Number(fields[2]) };
  } catch {
    return null; // gone meanwhile
  }
}

function allProcesses(): ProcessStat[] {
  return readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .flatMap((name) => readStat(Number(name)) ?? []);
}

/** Live (non-zombie) children of `pid`. */
export function childPids(pid: number): number[] {
  return allProcesses()
    .filter((stat) => stat.ppid === pid && stat.state !== 'Z')
    .map((stat) => stat.pid);
}

/** Every process still in process group `pgid`, zombies included. */
export function processGroupMembers(pgid: number): number[] {
  return allProcesses()
    .filter((stat) => stat.pgid === pgid)
    .map((stat) => stat.pid);
}

/** Polls `probe` until it returns a value that `isDone` accepts. */
export async function waitFor<T>(
  probe: () => T,
  isDone: (value: T) => boolean,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (isDone(value)) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out waiting for ${what}; last value ${JSON.stringify(value)}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/**
 * The remote ports of the TCP connections process `pid` holds open (Linux,
 * from /proc): which of a cluster's workers serves which client.
 */
export function remotePortsOf(pid: number): Set<number> {
  const inodes = new Set<string>();
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1];
      if (inode !== undefined) inodes.add(inode);
    } catch {
      // closed meanwhile
    }
  }
  const ports = new Set<number>();
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text = '';
    try {
      text = readFileSync(table, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const fields = line.trim().split(/\s+/);
      // fields: sl local_address rem_address st ... uid timeout inode
      if (fields.length > 9 && inodes.has(fields[9]!)) {
        ports.add(parseInt(fields[2]!.split(':')[1]!, 16));
      }
    }
  }
  return ports;
}
