/**
 * How a load is divided among threads: how many threads by default,
 * connections as evenly as possible, and the `--requests` budget in
 * proportion to each thread's connections, so that every thread finishes
 * at about the same time.
 */
import { availableParallelism } from 'node:os';

/**
 * Enough threads that the load generator is not the bottleneck: on the
 * same machine as the server (a loopback target) it leaves half the CPUs
 * to the server; against another host it uses them all. Never more than
 * one per connection.
 */
export function defaultThreadCount(
  host: string,
  connections: number,
  cpus = availableParallelism(),
): number {
  const isLoopback = /^(127\.|::1$|localhost$)/i.test(host);
  return Math.max(1, Math.min(connections, isLoopback ? Math.floor(cpus / 2) : cpus));
}

/** `total` split into `parts` whole numbers that differ by at most one (larger first). */
export function splitEvenly(total: number, parts: number): number[] {
  const base = Math.floor(total / parts);
  const extra = total % parts;
  return Array.from({ length: parts }, (_, index) => base + (index < extra ? 1 : 0));
}

/** `total` split in proportion to `weights`; the shares add up to `total` exactly. */
export function splitByWeight(total: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  if (sum === 0) return splitEvenly(total, weights.length);
  const shares = weights.map((weight) => Math.floor((total * weight) / sum));
  let left = total - shares.reduce((a, b) => a + b, 0);
  // Largest remainders first (Hamilton's method); ties to the earlier thread.
  const order = weights
    .map((weight, index) => ({ index, remainder: (total * weight) % sum }))
    .sort((a, b) => b.remainder - a.remainder || a.index - b.index);
  for (const { index } of order) {
    if (left === 0) break;
    shares[index]!++;
    left--;
  }
  return shares;
}
