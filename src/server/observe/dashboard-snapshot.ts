/**
 * What the live dashboard receives: one JSON object per Server-Sent Event
 * on `/events` (event name `snapshot`), once a second. Counters are totals
 * since the server started (in cluster mode: over every worker); the page
 * computes rates from them, and `history` gives it the last minutes at once
 * so a freshly opened dashboard does not start from an empty chart.
 */

/** Listener names as metrics label them. */
export type TransportName = 'tcp' | 'unix' | 'tls' | 'ws' | 'udp';

export interface HistoryPoint {
  /** The end of the one-second interval, ms since the epoch. */
  readonly t: number;
  /** Replies sent during the interval (one per request), by code: `{ "100": 12, "300": 3 }`. */
  readonly replies: Readonly<Record<string, number>>;
}

export interface RecentRecord {
  readonly id: number;
  /** ISO 8601 */
  readonly receivedAt: string;
  readonly peer: string;
  readonly name: string | null;
  /** Payload size in bytes. */
  readonly size: number;
  /**
   * The first bytes as text, safe to show: invalid UTF-8 and control
   * characters are replaced (still to be inserted as text, never as HTML).
   */
  readonly preview: string;
  /** True when the preview is shorter than the payload. */
  readonly truncated: boolean;
}

export interface LatencyHistogram {
  /** Bucket upper bounds in milliseconds, ascending; the last bucket is +Inf (not listed). */
  readonly boundsMs: readonly number[];
  /** Requests per bucket, NOT cumulative; `counts.length === boundsMs.length + 1`. */
  readonly counts: readonly number[];
  readonly count: number;
  readonly sumMs: number;
}

export interface DashboardSnapshot {
  /** When the snapshot was taken, ms since the epoch. */
  readonly time: number;
  /** `event-loop`, `sequential`, `fork` or `cluster`. */
  readonly mode: string;
  /** Processes serving connections: 1, or the cluster's live workers. */
  readonly workers: number;
  readonly startedAt: number;
  readonly connections: {
    /** Open now, by transport (`udp` counts datagram sessions in flight). */
    readonly current: Readonly<Partial<Record<TransportName, number>>>;
    /** Accepted since start, by transport. */
    readonly total: Readonly<Partial<Record<TransportName, number>>>;
    /** Refused since start, by reason: `max-connections`, `max-connections-per-ip`, `shutdown`. */
    readonly rejected: Readonly<Record<string, number>>;
  };
  /** Replies sent since start, by code (`"100"`, `"300"`, `"400"`, …). */
  readonly replies: Readonly<Record<string, number>>;
  readonly payloadsStored: number;
  readonly bytesReceived: number;
  readonly bytesSent: number;
  /** Time from a request's arrival to its reply being written. */
  readonly latency: LatencyHistogram;
  /** One point per second, oldest first, at most the last five minutes. */
  readonly history: readonly HistoryPoint[];
  /** The latest stored payloads, newest first, at most 20. */
  readonly recent: readonly RecentRecord[];
}
