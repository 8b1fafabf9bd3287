/**
 * The resident memory of another process, from /proc/PID/status (Linux).
 * One reading is noisy (a garbage collection may or may not have run), so
 * `sampleRss` takes several readings a little apart and returns their
 * median.
 */
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** VmRSS of `pid`, in bytes. */
export function readRss(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kib = /^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1];
  if (kib === undefined) throw new Error(`no VmRSS in /proc/${pid}/status`);
  return Number(kib) * 1024;
}

/** The median of `samples` readings, `intervalMs` apart, in bytes. */
export async function sampleRss(pid: number, samples = 5, intervalMs = 200): Promise<number> {
  const readings: number[] = [];
  for (let index = 0; index < samples; index++) {
    if (index > 0) await sleep(intervalMs);
    readings.push(readRss(pid));
  }
  readings.sort((a, b) => a - b);
  return readings[Math.floor(readings.length / 2)]!;
}

export function canReadRss(): boolean {
  try {
    readRss(process.pid);
    return true;
  } catch {
    return false;
  }
}
