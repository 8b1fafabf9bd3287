/** Messages between a cluster's primary and its workers (besides the store's, in ipc/). */
import type { RejectReason } from '../admission.js';
import type { CountersData } from '../observe/server-counters.js';
import { rpcChannel } from '../ipc/rpc.js';

/** The worker reads its options from this environment variable (JSON). */
export const WORKER_OPTIONS_ENV = 'HELO_CLUSTER_WORKER_OPTIONS';

/** The primary's sockets passed by socket activation (JSON, by listener). */
export const WORKER_FDS_ENV = 'HELO_CLUSTER_WORKER_FDS';

/** Worker -> primary: its listener is open (on the port all workers share). */
export interface WorkerListening {
  readonly type: 'helo:listening';
  readonly port: number;
  /** Every address, as `HeloServer.urls` lists them. */
  readonly urls: readonly string[];
}

/** Worker -> primary: it could not listen; the message says why, in one line. */
export interface WorkerListenFailed {
  readonly type: 'helo:listen-failed';
  readonly message: string;
}

/**
 * Worker -> primary, every second and at the end: its own counters, from
 * which the primary's `stats` and, once the worker has gone, its share of
 * the totals are made.
 */
export interface WorkerStats {
  readonly type: 'helo:stats';
  readonly counters: CountersData;
}

/** Worker -> primary: may I serve `want` more connections (or this one, from `ip`)? */
export interface SlotsRequest {
  readonly type: 'helo:slots-request';
  readonly request: number;
  readonly want: number;
  /** Only when a per-IP limit is on: then every connection is asked for. */
  readonly ip?: string;
  /** --proxy-protocol: the per-IP count only; the connection's slot was taken at accept. */
  readonly ipOnly?: boolean;
}

/** Primary -> worker: `granted` slots (0 with the reason when none). */
export interface SlotsGranted {
  readonly type: 'helo:slots-granted';
  readonly request: number;
  readonly granted: number;
  readonly reason: RejectReason | null;
}

/** Worker -> primary: slots given back (connections closed, or spare ones). */
export interface SlotsReturn {
  readonly type: 'helo:slots-return';
  readonly count: number;
  readonly ip?: string;
  /** Gives back a per-IP count only (see `SlotsRequest.ipOnly`). */
  readonly ipOnly?: boolean;
  /** True when this answers a `SlotsReclaim`. */
  readonly reclaimAnswer: boolean;
}

/** Primary -> worker: the pool is empty; give back every slot you are not using. */
export interface SlotsReclaim {
  readonly type: 'helo:slots-reclaim';
}

/**
 * Primary -> worker: send me your counters now (a scrape or a dashboard
 * tick). Besides these answers, the worker reports them unasked every
 * second (`WorkerStats`).
 */
export const COUNTERS_RPC = rpcChannel<null, CountersData>(
  'helo:counters-request',
  'helo:counters',
);

/** What a worker's HTTP port asks the primary, which sees the whole cluster. */
export type InsightQuestion = 'metrics' | 'snapshot' | 'store-writable';

/**
 * Worker -> primary; the answer is Prometheus text, a DashboardSnapshot or a
 * boolean, as the question asks.
 */
export const INSIGHT_RPC = rpcChannel<InsightQuestion, unknown>(
  'helo:insight-request',
  'helo:insight-answer',
);
