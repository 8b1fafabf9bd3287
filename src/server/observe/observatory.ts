/**
 * Where `/metrics`, `/readyz` and the dashboard get their numbers: the
 * process that sees the whole server (the server itself, or a cluster's
 * primary) samples its counters once a second and keeps the last five
 * minutes, so a dashboard opened now shows the recent past at once.
 *
 * `Insight` is what the HTTP port asks; a cluster worker answers it by
 * asking its primary (cluster/remote-insight.ts).
 */
import type { DashboardSnapshot, HistoryPoint } from './dashboard-snapshot.js';
import { PrometheusExposition } from './prometheus.js';
import type { RecentRecords } from './recent-records.js';
import type { CountersData } from './server-counters.js';

export interface Insight {
  /** Prometheus text. */
  metrics(): Promise<string>;
  /** The dashboard's picture, as of the last second. */
  snapshot(): Promise<DashboardSnapshot>;
  /**
   * False after a failed commit, until a commit succeeds again or, without
   * one, until `retryReadyAfterMs` have passed (see below).
   */
  storeWritable(): Promise<boolean>;
}

export interface ObservatoryOptions {
  readonly mode: string;
  /** Processes serving connections now. */
  readonly workers: () => number;
  /** The counters of the whole server, now. */
  readonly collect: () => Promise<CountersData>;
  readonly recent: RecentRecords;
  /** Sampling period; 1 s unless a test wants faster. */
  readonly sampleEveryMs?: number;
  /**
   * A load balancer sends no traffic to a server that is not ready, so no
   * commit could ever show that the store works again. Like a circuit
   * breaker's half-open state, readiness comes back this long after the
   * last failure and lets traffic try the store again. Default 10 s.
   */
  readonly retryReadyAfterMs?: number;
}

const HISTORY_POINTS = 300;

export class Observatory implements Insight {
  readonly #options: ObservatoryOptions;
  readonly #exposition = new PrometheusExposition();
  readonly #startedAt = Date.now();
  readonly #history: HistoryPoint[] = [];
  readonly #timer: NodeJS.Timeout;
  /** The previous sample, for the history's per-second differences. */
  #last: CountersData | null = null;
  #sampling: Promise<CountersData> | null = null;

  constructor(options: ObservatoryOptions) {
    this.#options = options;
    // A failed sample (a worker gone mid-answer) is simply skipped.
    this.#timer = setInterval(() => this.#sample().catch(() => {}), options.sampleEveryMs ?? 1_000);
    this.#timer.unref();
  }

  async metrics(): Promise<string> {
    return this.#exposition.render(await this.#options.collect());
  }

  async storeWritable(): Promise<boolean> {
    const data = await this.#options.collect();
    const retryAfterMs = this.#options.retryReadyAfterMs ?? 10_000;
    return data.lastCommitOk || Date.now() - data.lastCommitFailedAt >= retryAfterMs;
  }

  async snapshot(): Promise<DashboardSnapshot> {
    const data = await this.#options.collect();
    return {
      time: Date.now(),
      mode: this.#options.mode,
      workers: this.#options.workers(),
      startedAt: this.#startedAt,
      connections: {
        current: data.connectionsCurrent,
        total: data.connectionsTotal,
        rejected: data.rejected,
      },
      replies: data.replies,
      payloadsStored: data.payloadsStored,
      bytesReceived: data.bytesReceived,
      bytesSent: data.bytesSent,
      latency: {
        boundsMs: data.requestSeconds.bounds.map((seconds) => seconds * 1000),
        counts: data.requestSeconds.counts,
        count: data.requestSeconds.count,
        sumMs: data.requestSeconds.sum * 1000,
      },
      history: [...this.#history],
      recent: this.#options.recent.list(),
    };
  }

  /** Stops sampling. */
  close(): void {
    clearInterval(this.#timer);
  }

  #sample(): Promise<CountersData> {
    // Through a promise: a collect() that throws (rather than rejects) must
    // not escape the timer and end the process.
    this.#sampling ??= Promise.resolve()
      .then(() => this.#options.collect())
      .then(
        (data) => {
          this.#sampling = null;
          if (this.#last !== null) this.#addHistory(this.#last, data);
          this.#last = data;
          return data;
        },
        (error: unknown) => {
          this.#sampling = null;
          throw error;
        },
      );
    return this.#sampling;
  }

  #addHistory(before: CountersData, after: CountersData): void {
    const replies: Record<string, number> = {};
    for (const [code, count] of Object.entries(after.replies)) {
      const delta = count - (before.replies[code] ?? 0);
      if (delta > 0) replies[code] = delta;
    }
    this.#history.push({ t: Date.now(), replies });
    if (this.#history.length > HISTORY_POINTS) this.#history.shift();
  }
}
