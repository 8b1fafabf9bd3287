/**
 * The other side of heap-report-preload.ts: the Node.js flags that load it
 * into a server, and the request for a report (SIGUSR2, then wait for the
 * file).
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

const PRELOAD_URL = new URL('./heap-report-preload.js', import.meta.url).href;

/** Node.js flags, to go before the server's script. */
export const HEAP_REPORT_NODE_ARGS: readonly string[] = ['--expose-gc', '--import', PRELOAD_URL];

export const HEAP_REPORT_ENV_NAME = 'BENCH_HEAP_REPORT_FILE';

/** After a full garbage collection, in bytes: process.memoryUsage() and V8's heap spaces. */
export interface HeapReport {
  readonly rss: number;
  readonly heapTotal: number;
  readonly heapUsed: number;
  readonly external: number;
  readonly arrayBuffers: number;
  /** By V8 space name (`new_space`, `old_space`...): committed size and used bytes. */
  readonly spaces: Readonly<Record<string, { readonly size: number; readonly used: number }>>;
}

/** Asks the server `pid` (started with HEAP_REPORT_NODE_ARGS, writing to `file`) for a report. */
export async function requestHeapReport(
  pid: number,
  file: string,
  timeoutMs = 10_000,
): Promise<HeapReport> {
  rmSync(file, { force: true });
  process.kill(pid, 'SIGUSR2');
  const deadline = performance.now() + timeoutMs;
  while (!existsSync(file)) {
    if (performance.now() > deadline) {
      throw new Error(`process ${pid} wrote no heap report within ${timeoutMs} ms`);
    }
    await sleep(20);
  }
  return JSON.parse(readFileSync(file, 'utf8')) as HeapReport;
}
