/**
 * Runs a load over worker threads and merges what they measured: the entry
 * point of the load-generator library (`helo bench` and `npm run bench`
 * are thin over it).
 *
 * Each thread runs a share of the connections (thread-load.ts) with its own
 * event loop, so a fast server on a machine with cores to spare is not
 * measured against a single JavaScript thread. This thread only times the
 * phases: warm-up (counted apart, then discarded), measurement (for a
 * duration, or until `requests` are answered), and the drain of the
 * replies still due. Latency histograms are merged with `add()`.
 */
import { availableParallelism } from 'node:os';
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { Worker } from 'node:worker_threads';
import { InvalidOptionError, ProcessError } from '../errors.js';
import { type CountsSnapshot, sumCounts } from './load-counts.js';
import type { LoadPlan } from './load-plan.js';
import type { ThreadResult } from './thread-load.js';
import { splitByWeight, splitEvenly } from './thread-shares.js';
import type { FromWorker, ToWorker, WorkerData } from './worker-messages.js';

export interface LoadOptions {
  readonly host: string;
  readonly port: number;
  readonly plan: LoadPlan;
  readonly connections: number;
  /** Requests in flight per connection, at most. */
  readonly maxInFlight: number;
  /** Worker threads (at most one per connection). */
  readonly threads: number;
  /** Warm-up before measuring; what it counts is reported apart. */
  readonly warmupMs: number;
  /** Measure this long... */
  readonly durationMs: number | null;
  /** ...or until this many requests (sessions, for a session plan) are sent and answered. */
  readonly requests: number | null;
  /** Open loop: requests (or sessions) per second in total; null for a closed loop. */
  readonly ratePerSecond: number | null;
  /** Longest wait for a connection or a reply; 0 waits forever. */
  readonly timeoutMs: number;
  /** Called about every `progressIntervalMs` while the load runs. */
  readonly onProgress?: (progress: LoadProgress) => void;
  readonly progressIntervalMs?: number;
  /** Aborting stops the load early (as if its time were up); what was measured is returned. */
  readonly signal?: AbortSignal;
}

export interface LoadProgress {
  readonly phase: 'warm-up' | 'measuring' | 'draining';
  /** Since the load started. */
  readonly elapsedMs: number;
  /** Replies and errors so far, warm-up included. */
  readonly replies: number;
  readonly errors: number;
}

export interface LoadResult {
  readonly measured: CountsSnapshot;
  readonly warmup: CountsSnapshot;
  /** The measured window: from the end of the warm-up to the last measured reply (or the stop). */
  readonly elapsedMs: number;
  /** Per request, in nanoseconds. */
  readonly requestLatency: RecordableHistogram;
  /** Per session (session plans), in nanoseconds. */
  readonly sessionLatency: RecordableHistogram;
  readonly threads: number;
  /**
   * The load generator's own CPU use while measuring: CPU seconds of this
   * whole process (its load threads and this one) over the CPU seconds its
   * threads could have had (wall time x min(threads, CPUs it may run on)).
   * Near 1, the generator is what limits the figure (see generatorLimits()).
   */
  readonly generatorCpu: GeneratorCpu;
}

export interface GeneratorCpu {
  readonly cpuSeconds: number;
  readonly wallSeconds: number;
  /** CPUs the load threads could use at most: min(threads, CPUs allowed to this process). */
  readonly cpus: number;
  /** cpuSeconds / (wallSeconds x cpus), 0..1 (a little above 1 from the main thread). */
  readonly share: number;
}

/** A generator using this share of its CPUs or more is likely the bottleneck. */
export const GENERATOR_BOUND_SHARE = 0.9;

/** True when the generator, not the server, probably set the pace of `cpu`'s run. */
export function generatorLimits(cpu: GeneratorCpu): boolean {
  return cpu.share >= GENERATOR_BOUND_SHARE;
}

const WORKER_URL = new URL('./load-worker.js', import.meta.url);

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  checkOptions(options);
  const threads = Math.max(1, Math.min(options.threads, options.connections));
  const connectionsPerThread = splitEvenly(options.connections, threads);
  const budgets: (number | null)[] =
    options.requests === null
      ? connectionsPerThread.map(() => null)
      : splitByWeight(options.requests, connectionsPerThread);
  const measuringAtOnce = options.warmupMs === 0;
  const progressIntervalMs = options.onProgress ? (options.progressIntervalMs ?? 1000) : null;
  const startedAt = performance.now();
  let phase: LoadProgress['phase'] = measuringAtOnce ? 'measuring' : 'warm-up';

  const workers: Worker[] = [];
  const progress = connectionsPerThread.map(() => ({ replies: 0, errors: 0 }));
  const results: Promise<ThreadResult>[] = [];
  const started: Promise<void>[] = [];
  let firstConnection = 0;
  connectionsPerThread.forEach((connections, index) => {
    const data: WorkerData = {
      options: {
        host: options.host,
        port: options.port,
        plan: options.plan,
        connections,
        firstConnection,
        totalConnections: options.connections,
        maxInFlight: options.maxInFlight,
        ratePerSecond: options.ratePerSecond,
        timeoutMs: options.timeoutMs,
      },
      measuring: measuringAtOnce,
      budget: measuringAtOnce ? budgets[index]! : null,
      // Threads report more often than progress is shown, so that it is never a tick late.
      progressIntervalMs: progressIntervalMs === null ? null : Math.ceil(progressIntervalMs / 4),
    };
    firstConnection += connections;
    const worker = new Worker(WORKER_URL, { workerData: data });
    workers.push(worker);
    let onStarted!: () => void;
    started.push(new Promise((resolve) => (onStarted = resolve)));
    results.push(
      new Promise<ThreadResult>((resolve, reject) => {
        worker.on('message', (message: FromWorker) => {
          if (message.type === 'started') onStarted();
          else if (message.type === 'progress') progress[index] = message;
          else resolve(message.result);
        });
        worker.once('error', reject);
        worker.once('exit', (code) =>
          reject(
            new ProcessError(
              `load thread ${index + 1} ended (exit code ${code}) before its result`,
            ),
          ),
        );
      }),
    );
  });
  const send = (message: (index: number) => ToWorker): void =>
    workers.forEach((worker, index) => worker.postMessage(message(index)));
  const allResults = Promise.all(results);

  let progressTimer: NodeJS.Timeout | null = null;
  if (options.onProgress && progressIntervalMs !== null) {
    const report = options.onProgress;
    progressTimer = setInterval(() => {
      report({
        phase,
        elapsedMs: performance.now() - startedAt,
        replies: progress.reduce((sum, item) => sum + item.replies, 0),
        errors: progress.reduce((sum, item) => sum + item.errors, 0),
      });
    }, progressIntervalMs);
  }

  try {
    // The phases are timed from when every thread is running, not from when it was asked to.
    await Promise.race([Promise.all(started), allResults]);
    if (!measuringAtOnce) {
      await waitFor(options.warmupMs, allResults, options.signal);
      phase = 'measuring';
      send((index) => ({ type: 'measure', budget: budgets[index]! }));
    }
    const cpuFrom = process.cpuUsage();
    const wallFrom = performance.now();
    await waitFor(options.durationMs, allResults, options.signal);
    const cpu = process.cpuUsage(cpuFrom);
    const generatorCpu = cpuShare(
      (cpu.user + cpu.system) / 1e6,
      (performance.now() - wallFrom) / 1000,
      Math.min(threads, availableParallelism()),
    );
    phase = 'draining';
    send(() => ({ type: 'stop' }));
    return mergeResults(await allResults, threads, generatorCpu);
  } finally {
    if (progressTimer !== null) clearInterval(progressTimer);
    allResults.catch(() => undefined);
    await Promise.all(workers.map((worker) => worker.terminate()));
  }
}

function checkOptions(options: LoadOptions): void {
  const whole = (name: string, value: number, min: number): void => {
    if (!Number.isInteger(value) || value < min) {
      throw new InvalidOptionError(`${name} must be a whole number >= ${min}, got ${value}`);
    }
  };
  whole('connections', options.connections, 1);
  whole('maxInFlight', options.maxInFlight, 1);
  whole('threads', options.threads, 1);
  if ((options.durationMs === null) === (options.requests === null)) {
    throw new InvalidOptionError('give exactly one of durationMs and requests');
  }
  if (options.requests !== null) whole('requests', options.requests, 1);
  if (options.durationMs !== null && !(options.durationMs > 0)) {
    throw new InvalidOptionError(`durationMs must be positive, got ${options.durationMs}`);
  }
  if (options.ratePerSecond !== null && !(options.ratePerSecond > 0)) {
    throw new InvalidOptionError(`ratePerSecond must be positive, got ${options.ratePerSecond}`);
  }
}

/**
 * Resolves after `ms` (never, for null), when `done` settles, or on abort;
 * rejects if `done` rejects (a thread failed).
 */
function waitFor(ms: number | null, done: Promise<unknown>, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const timer = ms === null ? null : setTimeout(finish, ms);
    signal?.addEventListener('abort', finish, { once: true });
    done.then(finish, (error: unknown) => {
      cleanUp();
      reject(error instanceof Error ? error : new ProcessError(String(error)));
    });
    function cleanUp(): void {
      if (timer !== null) clearTimeout(timer);
      signal?.removeEventListener('abort', finish);
    }
    function finish(): void {
      cleanUp();
      resolve();
    }
  });
}

function cpuShare(cpuSeconds: number, wallSeconds: number, cpus: number): GeneratorCpu {
  const round = (value: number): number => Math.round(value * 1000) / 1000;
  return {
    cpuSeconds: round(cpuSeconds),
    wallSeconds: round(wallSeconds),
    cpus,
    share: wallSeconds > 0 ? round(cpuSeconds / (wallSeconds * cpus)) : 0,
  };
}

function mergeResults(
  results: readonly ThreadResult[],
  threads: number,
  generatorCpu: GeneratorCpu,
): LoadResult {
  const requestLatency = createHistogram();
  const sessionLatency = createHistogram();
  for (const result of results) {
    requestLatency.add(result.requestLatency);
    sessionLatency.add(result.sessionLatency);
  }
  const froms = results.flatMap((result) => result.measuredFrom ?? []);
  const untils = results.flatMap((result) => result.measuredUntil ?? []);
  const elapsedMs =
    froms.length === 0 || untils.length === 0 ? 0 : Math.max(...untils) - Math.min(...froms);
  return {
    measured: sumCounts(results.map((result) => result.measured)),
    warmup: sumCounts(results.map((result) => result.warmup)),
    elapsedMs,
    requestLatency,
    sessionLatency,
    threads,
    generatorCpu,
  };
}
