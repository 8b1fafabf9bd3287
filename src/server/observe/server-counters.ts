/**
 * What a server counts, as plain numbers: connections, replies, bytes,
 * latencies, commits. `/metrics` (prometheus.ts) and the dashboard
 * (observatory.ts) are both views of these counters.
 *
 * Plain fields rather than library metric objects, because some are
 * updated for every request on the hot path, and because a cluster's
 * workers send theirs to the primary, where they are added up
 * (`addCounters`).
 */
import { ALL_REPLIES } from '../../core/replies.js';
import type { RejectReason } from '../admission.js';
import { addHistograms, BucketHistogram, type HistogramData } from './bucket-histogram.js';
import type { TransportName } from './dashboard-snapshot.js';

export const TRANSPORTS: readonly TransportName[] = ['tcp', 'unix', 'tls', 'ws', 'udp'];
export const REJECT_REASONS: readonly RejectReason[] = [
  'max-connections',
  'max-connections-per-ip',
  'shutdown',
  'proxy',
];

/** Seconds from a request's arrival to its reply's write: 100 µs to 10 s. */
const REQUEST_SECONDS_BOUNDS = [
  0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];
/** Seconds one group commit takes (BEGIN to synced COMMIT). */
const COMMIT_SECONDS_BOUNDS = [
  0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
];
/** Records per group commit. */
const BATCH_SIZE_BOUNDS = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/** The counters as data: what crosses process boundaries and is summed. */
export interface CountersData {
  readonly connectionsTotal: Readonly<Record<TransportName, number>>;
  readonly connectionsCurrent: Readonly<Record<TransportName, number>>;
  readonly rejected: Readonly<Record<RejectReason, number>>;
  /** Replies by code, every code of the reply table present. */
  readonly replies: Readonly<Record<string, number>>;
  readonly payloadsStored: number;
  readonly payloadsFailed: number;
  readonly bytesReceived: number;
  readonly bytesSent: number;
  /** Connections closed by `--idle-timeout` (`408 TOUT`). */
  readonly idleTimeouts: number;
  /** Times reading from a client paused because it did not read its replies. */
  readonly slowReaderPauses: number;
  /** Clients disconnected by `--slow-reader-timeout`. */
  readonly slowReaderDisconnects: number;
  /** Connections closed without a reply because they spoke HTTP (§8). */
  readonly crossProtocolRejects: number;
  /** Connections closed because helo's own code threw while serving them (fault-boundary.ts). */
  readonly connectionFaults: number;
  /** HTTP-port connections closed for staying idle. */
  readonly httpIdleCloses: number;
  /** `/events` subscribers cut off: not reading, or the oldest giving way. */
  readonly eventsCutOffs: number;
  /** UDP `DATA` datagrams dropped unanswered because too many appends were waiting. */
  readonly datagramsDropped: number;
  /** Records answered 500 FAIL because their commit's outcome stayed unknown (PostgreSQL). */
  readonly storeInDoubt: number;
  readonly requestSeconds: HistogramData;
  readonly commitSeconds: HistogramData;
  readonly commitBatchSize: HistogramData;
  /** False from a failed commit until the next one succeeds. */
  readonly lastCommitOk: boolean;
  /** When the latest commit failure happened (ms since the epoch), 0 if none. */
  readonly lastCommitFailedAt: number;
  /** Resident memory of the process(es) counted, in bytes (a cluster: primary and workers). */
  readonly residentMemoryBytes: number;
  /** CPU time (user + system) the process(es) have used, in seconds. */
  readonly cpuSeconds: number;
}

function cpuSecondsUsed(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1e6;
}

/**
 * `process.memoryUsage.rss()` opens /proc/self/stat each time: with every
 * descriptor in use (EMFILE) it throws, and a throw in the 1-second sampler
 * would end the process. Out of descriptors, the last reading stands in
 * (docs/RELIABILITY.md: running out of files degrades, never crashes).
 */
let lastResidentMemoryBytes = 0;
function residentMemoryBytes(): number {
  try {
    lastResidentMemoryBytes = process.memoryUsage.rss();
  } catch {
    // Keep the last value: the next tick with a free descriptor updates it.
  }
  return lastResidentMemoryBytes;
}

function byTransport(): Record<TransportName, number> {
  return { tcp: 0, unix: 0, tls: 0, ws: 0, udp: 0 };
}

/**
 * What the server tells its metrics, one call per event. Connections,
 * transports and the HTTP port record through this narrow interface and
 * never write the counters themselves; `ServerCounters` is the one
 * implementation, and `/metrics`, `/readyz` and the dashboard read its data.
 * On the hot path each call is one field increment (V8 inlines it).
 */
export interface ServerRecorder {
  connectionOpened(transport: TransportName): void;
  connectionClosed(transport: TransportName): void;
  refused(reason: RejectReason): void;
  /** A UDP datagram: counted as a connection that opens and closes. */
  datagramReceived(bytes: number): void;
  received(bytes: number): void;
  sent(bytes: number): void;
  replied(code: number): void;
  /** `count` replies written together, each `seconds` after its request. */
  answered(seconds: number, count?: number): void;
  payloadStored(): void;
  payloadFailed(): void;
  /** A UDP append waiting (+1) or done (-1). */
  datagramAppendPending(delta: 1 | -1): void;
  datagramDropped(): void;
  idleTimedOut(): void;
  slowReaderPaused(): void;
  slowReaderDisconnected(): void;
  crossProtocolRejected(): void;
  connectionFault(): void;
  httpIdleClosed(): void;
  eventsCutOff(): void;
}

export class ServerCounters implements ServerRecorder {
  readonly connectionsTotal = byTransport();
  readonly connectionsCurrent = byTransport();
  readonly rejected: Record<RejectReason, number> = {
    'max-connections': 0,
    'max-connections-per-ip': 0,
    shutdown: 0,
    proxy: 0,
  };
  /** Indexed by reply code: an array index is the cheapest counter on the hot path. */
  readonly repliesByCode = new Float64Array(600);
  payloadsStored = 0;
  payloadsFailed = 0;
  bytesReceived = 0;
  bytesSent = 0;
  idleTimeouts = 0;
  slowReaderPauses = 0;
  slowReaderDisconnects = 0;
  crossProtocolRejects = 0;
  connectionFaults = 0;
  httpIdleCloses = 0;
  eventsCutOffs = 0;
  datagramsDropped = 0;
  readonly requestSeconds = new BucketHistogram(REQUEST_SECONDS_BOUNDS);
  readonly commitSeconds = new BucketHistogram(COMMIT_SECONDS_BOUNDS);
  readonly commitBatchSize = new BucketHistogram(BATCH_SIZE_BOUNDS);
  lastCommitOk = true;
  lastCommitFailedAt = 0;
  storeInDoubt = 0;

  /** For the store's `onCommit`: one group commit finished. */
  readonly onCommit = (info: {
    readonly records: number;
    readonly durationMs: number;
    readonly ok: boolean;
    readonly inDoubt?: number;
  }): void => {
    // records 0: no commit, only the store saying whether its database answers.
    if (info.records > 0) {
      this.commitSeconds.observe(info.durationMs / 1000);
      this.commitBatchSize.observe(info.records);
    }
    this.storeInDoubt += info.inDoubt ?? 0;
    this.lastCommitOk = info.ok;
    if (!info.ok) this.lastCommitFailedAt = Date.now();
  };

  connectionOpened(transport: TransportName): void {
    this.connectionsTotal[transport]++;
    this.connectionsCurrent[transport]++;
  }

  connectionClosed(transport: TransportName): void {
    this.connectionsCurrent[transport]--;
  }

  refused(reason: RejectReason): void {
    this.rejected[reason]++;
  }

  datagramReceived(bytes: number): void {
    this.connectionsTotal.udp++;
    this.bytesReceived += bytes;
  }

  received(bytes: number): void {
    this.bytesReceived += bytes;
  }

  sent(bytes: number): void {
    this.bytesSent += bytes;
  }

  replied(code: number): void {
    this.repliesByCode[code]!++;
  }

  answered(seconds: number, count = 1): void {
    this.requestSeconds.observe(seconds, count);
  }

  payloadStored(): void {
    this.payloadsStored++;
  }

  payloadFailed(): void {
    this.payloadsFailed++;
  }

  datagramAppendPending(delta: 1 | -1): void {
    this.connectionsCurrent.udp += delta;
  }

  datagramDropped(): void {
    this.datagramsDropped++;
  }

  idleTimedOut(): void {
    this.idleTimeouts++;
  }

  slowReaderPaused(): void {
    this.slowReaderPauses++;
  }

  slowReaderDisconnected(): void {
    this.slowReaderDisconnects++;
  }

  crossProtocolRejected(): void {
    this.crossProtocolRejects++;
  }

  connectionFault(): void {
    this.connectionFaults++;
  }

  httpIdleClosed(): void {
    this.httpIdleCloses++;
  }

  eventsCutOff(): void {
    this.eventsCutOffs++;
  }

  toData(): CountersData {
    const replies: Record<string, number> = {};
    for (const { code } of ALL_REPLIES) replies[code] = this.repliesByCode[code]!;
    return {
      connectionsTotal: { ...this.connectionsTotal },
      connectionsCurrent: { ...this.connectionsCurrent },
      rejected: { ...this.rejected },
      replies,
      payloadsStored: this.payloadsStored,
      payloadsFailed: this.payloadsFailed,
      bytesReceived: this.bytesReceived,
      bytesSent: this.bytesSent,
      idleTimeouts: this.idleTimeouts,
      slowReaderPauses: this.slowReaderPauses,
      slowReaderDisconnects: this.slowReaderDisconnects,
      crossProtocolRejects: this.crossProtocolRejects,
      connectionFaults: this.connectionFaults,
      httpIdleCloses: this.httpIdleCloses,
      eventsCutOffs: this.eventsCutOffs,
      datagramsDropped: this.datagramsDropped,
      storeInDoubt: this.storeInDoubt,
      requestSeconds: this.requestSeconds.toData(),
      commitSeconds: this.commitSeconds.toData(),
      commitBatchSize: this.commitBatchSize.toData(),
      lastCommitOk: this.lastCommitOk,
      lastCommitFailedAt: this.lastCommitFailedAt,
      residentMemoryBytes: residentMemoryBytes(),
      cpuSeconds: cpuSecondsUsed(),
    };
  }
}

function addRecords<K extends string>(
  a: Readonly<Record<K, number>>,
  b: Readonly<Record<K, number>>,
): Record<K, number> {
  const sum = { ...a } as Record<K, number>;
  for (const key of Object.keys(b) as K[]) sum[key] = (sum[key] ?? 0) + b[key];
  return sum;
}

/** The counters of several processes as one (a cluster: workers + primary). */
export function addCounters(a: CountersData, b: CountersData): CountersData {
  return {
    connectionsTotal: addRecords(a.connectionsTotal, b.connectionsTotal),
    connectionsCurrent: addRecords(a.connectionsCurrent, b.connectionsCurrent),
    rejected: addRecords(a.rejected, b.rejected),
    replies: addRecords(a.replies, b.replies),
    payloadsStored: a.payloadsStored + b.payloadsStored,
    payloadsFailed: a.payloadsFailed + b.payloadsFailed,
    bytesReceived: a.bytesReceived + b.bytesReceived,
    bytesSent: a.bytesSent + b.bytesSent,
    idleTimeouts: a.idleTimeouts + b.idleTimeouts,
    slowReaderPauses: a.slowReaderPauses + b.slowReaderPauses,
    slowReaderDisconnects: a.slowReaderDisconnects + b.slowReaderDisconnects,
    crossProtocolRejects: a.crossProtocolRejects + b.crossProtocolRejects,
    connectionFaults: a.connectionFaults + b.connectionFaults,
    httpIdleCloses: a.httpIdleCloses + b.httpIdleCloses,
    eventsCutOffs: a.eventsCutOffs + b.eventsCutOffs,
    datagramsDropped: a.datagramsDropped + b.datagramsDropped,
    storeInDoubt: a.storeInDoubt + b.storeInDoubt,
    requestSeconds: addHistograms(a.requestSeconds, b.requestSeconds),
    commitSeconds: addHistograms(a.commitSeconds, b.commitSeconds),
    commitBatchSize: addHistograms(a.commitBatchSize, b.commitBatchSize),
    lastCommitOk: a.lastCommitOk && b.lastCommitOk,
    lastCommitFailedAt: Math.max(a.lastCommitFailedAt, b.lastCommitFailedAt),
    residentMemoryBytes: a.residentMemoryBytes + b.residentMemoryBytes,
    cpuSeconds: a.cpuSeconds + b.cpuSeconds,
  };
}

/** Connections over the stream transports (UDP datagrams are not connections). */
export function streamConnections(byTransport: Readonly<Record<TransportName, number>>): number {
  return byTransport.tcp + byTransport.unix + byTransport.tls + byTransport.ws;
}

/** A process's counters once it has exited: its totals stay, nothing of it is "current". */
export function withoutCurrent(data: CountersData): CountersData {
  return { ...data, connectionsCurrent: byTransport(), lastCommitOk: true, residentMemoryBytes: 0 };
}
