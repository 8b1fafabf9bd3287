/**
 * How the connections to a server are spread over its processes, from
 * `ss -tnp` (Linux): for a cluster whose workers accept on a shared socket,
 * the kernel decides, and with a few long-lived connections it may give
 * one worker most of them, or all.
 */
import { execFileSync } from 'node:child_process';

/**
 * Established connections to local `port`, counted per owning process,
 * largest first and padded with zeros to `processes`; null when `ss` is
 * missing or shows no owners.
 */
export function connectionsPerProcess(port: number, processes: number): number[] | null {
  let output: string;
  try {
    output = execFileSync('ss', ['-tnpH', 'state', 'established', `sport = :${port}`], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
    });
  } catch {
    return null;
  }
  const counts = new Map<string, number>();
  for (const line of output.split('\n')) {
    // One owner per socket is enough: a socket a process shares with its children counts once.
    const pid = /pid=(\d+)/.exec(line)?.[1];
    if (pid !== undefined) counts.set(pid, (counts.get(pid) ?? 0) + 1);
  }
  if (counts.size === 0) return null;
  const spread = [...counts.values()].sort((a, b) => b - a);
  while (spread.length < processes) spread.push(0);
  return spread;
}
