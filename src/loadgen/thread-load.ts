/**
 * The share of a load that one thread runs: its connections, the phase
 * (warm-up, then measured), the budget of `--requests`, the timeout checks
 * and, open loop, the clock that releases requests when they fall due.
 * It runs in a worker thread (load-worker.ts) but knows nothing of
 * threads, so it can be tested and reused directly.
 */
import { createHistogram, type RecordableHistogram } from 'node:perf_hooks';
import { ExchangeSequence } from './exchange-sequence.js';
import { type CountsSnapshot, LoadCounts } from './load-counts.js';
import { LoadConnection, type LoadContext } from './load-connection.js';
import type { LoadPlan } from './load-plan.js';
import { RateSchedule } from './rate-schedule.js';

export interface ThreadLoadOptions {
  readonly host: string;
  readonly port: number;
  readonly plan: LoadPlan;
  /** Connections this thread runs. */
  readonly connections: number;
  /** The index of its first connection among all threads' (spreads the open-loop schedule). */
  readonly firstConnection: number;
  readonly totalConnections: number;
  /** Requests in flight per connection, at most. */
  readonly maxInFlight: number;
  /** Open loop: requests (or sessions) per second over all threads; null for a closed loop. */
  readonly ratePerSecond: number | null;
  /** Longest wait for a connection or a reply; 0 waits forever. */
  readonly timeoutMs: number;
}

/** What a thread measured; times are absolute (ms since the epoch) so threads compare. */
export interface ThreadResult {
  readonly warmup: CountsSnapshot;
  readonly measured: CountsSnapshot;
  /** When measuring began, or null if it never did. */
  readonly measuredFrom: number | null;
  /** When the measured window ended: the last measured reply, or the stop if later. */
  readonly measuredUntil: number | null;
  readonly requestLatency: RecordableHistogram;
  readonly sessionLatency: RecordableHistogram;
}

/** How often connections are checked for a timeout. */
const TIMEOUT_CHECK_MS = 100;
/** Open loop: how often due requests are released (the timer's floor in Node). */
const RATE_TICK_MS = 1;
/** Enough for many replies per read; shared by every socket of the thread. */
const READ_BUFFER_BYTES = 64 * 1024;

/** The absolute time of a performance.now() reading of this thread. */
function absoluteTime(now: number): number {
  return performance.timeOrigin + now;
}

export class ThreadLoad implements LoadContext {
  readonly host: string;
  readonly port: number;
  readonly sequence: ExchangeSequence;
  readonly isSession: boolean;
  readonly maxInFlight: number;
  readonly timeoutMs: number;
  readonly readBuffer = Buffer.allocUnsafe(READ_BUFFER_BYTES);
  readonly warmup = new LoadCounts();
  readonly measured = new LoadCounts();
  readonly requestLatency = createHistogram();
  readonly sessionLatency = createHistogram();
  lastMeasuredAt = -Infinity;
  lastReplyAt = -Infinity;

  readonly #options: ThreadLoadOptions;
  readonly #connections: LoadConnection[] = [];
  #retired = 0;
  #isMeasuring = false;
  #isStopping = false;
  #measuringSince: number | null = null;
  #stoppedAt: number | null = null;
  /** Units left to send in the measured phase; Infinity without `--requests`. */
  #budget = Infinity;
  #timers: NodeJS.Timeout[] = [];
  readonly #finished: Promise<void>;
  #finish!: () => void;

  constructor(options: ThreadLoadOptions) {
    this.#options = options;
    this.host = options.host;
    this.port = options.port;
    this.isSession = options.plan.kind === 'session';
    this.maxInFlight = options.maxInFlight;
    this.timeoutMs = options.timeoutMs;
    this.sequence = new ExchangeSequence(options.plan, options.maxInFlight);
    this.#finished = new Promise((resolve) => (this.#finish = resolve));
  }

  get isMeasuring(): boolean {
    return this.#isMeasuring;
  }

  get isWindingDown(): boolean {
    return this.#isStopping || (this.#isMeasuring && this.#budget === 0);
  }

  /** Resolves once every connection is retired (after stop(), or once the budget is spent). */
  get finished(): Promise<void> {
    return this.#finished;
  }

  /** Replies and errors so far, both phases: for a progress line. */
  progress(): { replies: number; errors: number } {
    return {
      replies: this.warmup.replies + this.measured.replies,
      errors: this.warmup.errorCount + this.measured.errorCount,
    };
  }

  /**
   * Opens the connections. With `measuring`, there is no warm-up and
   * `budget` (units for this thread; null for no limit) applies at once.
   */
  start(measuring: boolean, budget: number | null): void {
    const options = this.#options;
    const startAt = performance.now();
    if (measuring) this.beginMeasuring(budget);
    if (options.connections === 0) this.#finish();
    for (let k = 0; k < options.connections; k++) {
      const schedule =
        options.ratePerSecond === null
          ? null
          : RateSchedule.forConnection(
              startAt,
              options.ratePerSecond,
              options.firstConnection + k,
              options.totalConnections,
            );
      this.#connections.push(new LoadConnection(this, schedule));
    }
    this.#timers.push(setInterval(() => this.#checkTimeouts(), TIMEOUT_CHECK_MS));
    if (options.ratePerSecond !== null && !this.isSession) {
      // Sessions wait on their own timers; steady connections are released by this tick.
      this.#timers.push(setInterval(() => this.#releaseDue(), RATE_TICK_MS));
    }
    for (const connection of this.#connections) connection.start();
  }

  /** Ends the warm-up: from now on, what is sent is measured, and `budget` applies. */
  beginMeasuring(budget: number | null): void {
    if (this.#isMeasuring) return;
    this.#isMeasuring = true;
    this.#measuringSince = performance.now();
    this.#budget = budget ?? Infinity;
    for (const connection of this.#connections) connection.beginMeasuring();
    if (this.#budget === 0) this.#windDown();
  }

  /** Stops sending; resolves `finished` once every reply still due has come (or timed out). */
  stop(): void {
    if (this.#isStopping) return;
    this.#isStopping = true;
    this.#stoppedAt = performance.now();
    this.#windDown();
  }

  take(units: number): number {
    if (!this.#isMeasuring || this.#budget === Infinity) return units;
    const granted = Math.min(units, this.#budget);
    this.#budget -= granted;
    // The last units are out: idle connections can go.
    if (this.#budget === 0) queueMicrotask(() => this.#windDown());
    return granted;
  }

  onRetired(): void {
    this.#retired++;
    if (this.#retired === this.#connections.length) {
      this.#clearTimers();
      this.#finish();
    }
  }

  result(): ThreadResult {
    const from = this.#measuringSince;
    const until =
      from === null ? null : Math.max(from, this.lastMeasuredAt, this.#stoppedAt ?? -Infinity);
    return {
      warmup: this.warmup.snapshot(),
      measured: this.measured.snapshot(),
      measuredFrom: from === null ? null : absoluteTime(from),
      measuredUntil: until === null ? null : absoluteTime(until),
      requestLatency: this.requestLatency,
      sessionLatency: this.sessionLatency,
    };
  }

  #windDown(): void {
    for (const connection of this.#connections) connection.retireIfIdle();
  }

  #checkTimeouts(): void {
    const now = performance.now();
    for (const connection of this.#connections) connection.checkTimeout(now);
    // With a budget the load ends only when it is spent: a target that went
    // away would keep it running for ever. Nothing answered for the timeout
    // (every request in flight has timed out by then) ends it instead.
    const since = Math.max(this.lastReplyAt, this.#measuringSince ?? Infinity);
    if (this.#budget !== Infinity && this.timeoutMs > 0 && now - since > this.timeoutMs) {
      this.stop();
    }
  }

  #releaseDue(): void {
    const now = performance.now();
    for (const connection of this.#connections) connection.fill(now);
  }

  #clearTimers(): void {
    for (const timer of this.#timers) clearInterval(timer);
    this.#timers = [];
  }
}
