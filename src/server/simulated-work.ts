/**
 * Simulated work, for experiments with the concurrency models (`--work-ms`,
 * `--work-cpu-ms`). A real service does something for each request: waits
 * for a database or a disk (I/O-bound: the process is free meanwhile) or
 * computes (CPU-bound: the process is busy). These knobs make helo behave
 * like either, so the benchmarks can show which model wins where.
 */
import type { ServerOptions } from './options.js';

/**
 * Somewhere else to run a request's `--work-cpu-ms` than the connection's
 * own event loop: the worker threads of `--mode threads`
 * (threads/thread-pool.ts). Rejects if the thread running it dies.
 */
export interface CpuWorkRunner {
  run(cpuMs: number): Promise<void>;
}

export class SimulatedWork {
  /** Each reply waits this long on a timer; the process serves others meanwhile. */
  readonly delayMs: number;
  /** Each request keeps the CPU busy this long; nothing else runs in this process meanwhile. */
  readonly cpuMs: number;

  private constructor(delayMs: number, cpuMs: number) {
    this.delayMs = delayMs;
    this.cpuMs = cpuMs;
  }

  /** null when both knobs are off, so the normal path pays nothing. */
  static from(options: Pick<ServerOptions, 'workMs' | 'workCpuMs'>): SimulatedWork | null {
    if (options.workMs === 0 && options.workCpuMs === 0) return null;
    return new SimulatedWork(options.workMs, options.workCpuMs);
  }

  /** Spins for `cpuMs`: deliberately blocking, as a computation would be. */
  burnCpu(): void {
    if (this.cpuMs === 0) return;
    const until = performance.now() + this.cpuMs;
    while (performance.now() < until) {
      // Busy on purpose.
    }
  }
}
