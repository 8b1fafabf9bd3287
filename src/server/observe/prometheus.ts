/**
 * `/metrics`: the server's counters in Prometheus text, through prom-client.
 *
 * prom-client formats what a metric's `get()` returns. helo's metrics are
 * registered as such metric objects reading one `CountersData` taken per
 * scrape, so a scrape is one consistent picture (in a cluster: one round
 * of answers from the workers), and the hot path only ever adds to plain
 * numbers. prom-client's own default collectors add the process metrics
 * (CPU, memory, event-loop lag, open file descriptors, GC).
 */
import { collectDefaultMetrics, Registry, type Metric } from 'prom-client';
import { ALL_REPLIES } from '../../core/replies.js';
import type { HistogramData } from './bucket-histogram.js';
import { REJECT_REASONS, TRANSPORTS, type CountersData } from './server-counters.js';

type Labels = Record<string, string>;
interface Sample {
  readonly value: number;
  readonly labels: Labels;
  readonly metricName?: string;
}
type MetricType = 'counter' | 'gauge' | 'histogram';

interface MetricDefinition {
  readonly name: string;
  readonly help: string;
  readonly type: MetricType;
  readonly samples: (data: CountersData) => Sample[];
}

const REPLY_CODES = ALL_REPLIES.map(({ code }) => String(code));

function single(value: (data: CountersData) => number): (data: CountersData) => Sample[] {
  return (data) => [{ value: value(data), labels: {} }];
}

function byLabel(
  label: string,
  keys: readonly string[],
  value: (data: CountersData, key: string) => number,
): (data: CountersData) => Sample[] {
  return (data) => keys.map((key) => ({ value: value(data, key), labels: { [label]: key } }));
}

/** Prometheus histograms are cumulative: `le` buckets count everything at or below. */
function histogramSamples(name: string, histogram: HistogramData): Sample[] {
  const samples: Sample[] = [];
  let cumulative = 0;
  histogram.counts.forEach((count, i) => {
    cumulative += count;
    const le = i < histogram.bounds.length ? String(histogram.bounds[i]) : '+Inf';
    samples.push({ metricName: `${name}_bucket`, labels: { le }, value: cumulative });
  });
  samples.push({ metricName: `${name}_sum`, labels: {}, value: histogram.sum });
  samples.push({ metricName: `${name}_count`, labels: {}, value: histogram.count });
  return samples;
}

function histogram(
  name: string,
  help: string,
  pick: (data: CountersData) => HistogramData,
): MetricDefinition {
  return { name, help, type: 'histogram', samples: (data) => histogramSamples(name, pick(data)) };
}

/** Every helo_* metric; docs/METRICS.md says what each one counts. */
const HELO_METRICS: readonly MetricDefinition[] = [
  {
    name: 'helo_connections_total',
    help: 'Connections accepted, by transport (udp: datagrams).',
    type: 'counter',
    samples: byLabel('transport', TRANSPORTS, (d, t) => d.connectionsTotal[t as 'tcp']),
  },
  {
    name: 'helo_connections_current',
    help: 'Connections open now, by transport (udp: datagrams being answered).',
    type: 'gauge',
    samples: byLabel('transport', TRANSPORTS, (d, t) => d.connectionsCurrent[t as 'tcp']),
  },
  {
    name: 'helo_connections_rejected_total',
    help: 'Connections refused before their session started, by reason.',
    type: 'counter',
    samples: byLabel('reason', REJECT_REASONS, (d, r) => d.rejected[r as 'shutdown']),
  },
  {
    name: 'helo_replies_total',
    help: 'Replies sent, by code: one per request, plus 408 TOUT and shutdown 503 BUSY.',
    type: 'counter',
    samples: byLabel('code', REPLY_CODES, (d, code) => d.replies[code] ?? 0),
  },
  {
    name: 'helo_payloads_stored_total',
    help: 'Payloads committed to the store and acknowledged 300 DRCV.',
    type: 'counter',
    samples: single((d) => d.payloadsStored),
  },
  {
    name: 'helo_payloads_failed_total',
    help: 'Payloads the store refused, answered 500 FAIL.',
    type: 'counter',
    samples: single((d) => d.payloadsFailed),
  },
  {
    name: 'helo_bytes_received_total',
    help: 'Bytes read from clients.',
    type: 'counter',
    samples: single((d) => d.bytesReceived),
  },
  {
    name: 'helo_bytes_sent_total',
    help: 'Reply bytes written to clients.',
    type: 'counter',
    samples: single((d) => d.bytesSent),
  },
  histogram(
    'helo_request_duration_seconds',
    'From a request arriving to its reply being written (a DATA includes its commit).',
    (d) => d.requestSeconds,
  ),
  histogram(
    'helo_store_commit_seconds',
    'Wall time of one group commit (BEGIN to synced COMMIT).',
    (d) => d.commitSeconds,
  ),
  histogram('helo_commit_batch_size', 'Records per group commit.', (d) => d.commitBatchSize),
  {
    name: 'helo_idle_timeouts_total',
    help: 'Connections closed by --idle-timeout (408 TOUT).',
    type: 'counter',
    samples: single((d) => d.idleTimeouts),
  },
  {
    name: 'helo_long_lines_total',
    help: 'Lines over --max-line (401 LONG).',
    type: 'counter',
    samples: single((d) => d.replies['401'] ?? 0),
  },
  {
    name: 'helo_slow_reader_pauses_total',
    help: 'Times reading stopped because a client did not read its replies.',
    type: 'counter',
    samples: single((d) => d.slowReaderPauses),
  },
  {
    name: 'helo_slow_reader_disconnects_total',
    help: 'Clients disconnected by --slow-reader-timeout.',
    type: 'counter',
    samples: single((d) => d.slowReaderDisconnects),
  },
  {
    name: 'helo_cross_protocol_rejects_total',
    help: 'Connections closed without a reply because they spoke HTTP (docs/PROTOCOL.md section 8).',
    type: 'counter',
    samples: single((d) => d.crossProtocolRejects),
  },
  {
    name: 'helo_connection_faults_total',
    help: 'Connections closed because helo itself failed while serving them (a bug; see the error log).',
    type: 'counter',
    samples: single((d) => d.connectionFaults),
  },
  {
    name: 'helo_http_idle_closes_total',
    help: 'HTTP-port connections closed for staying idle.',
    type: 'counter',
    samples: single((d) => d.httpIdleCloses),
  },
  {
    name: 'helo_events_cut_offs_total',
    help: '/events subscribers cut off: not reading, or the oldest making room for a new one.',
    type: 'counter',
    samples: single((d) => d.eventsCutOffs),
  },
  {
    name: 'helo_udp_datagrams_dropped_total',
    help: 'UDP DATA datagrams dropped unanswered because 1,024 appends were already waiting (the client retries).',
    type: 'counter',
    samples: single((d) => d.datagramsDropped),
  },
  {
    name: 'helo_store_in_doubt_total',
    help: 'Payloads answered 500 FAIL because the outcome of their commit to a shared database stayed unknown (removed once it answers again).',
    type: 'counter',
    samples: single((d) => d.storeInDoubt),
  },
  {
    name: 'helo_server_resident_memory_bytes',
    help: 'Resident memory of every process of the server (a cluster: primary and workers).',
    type: 'gauge',
    samples: single((d) => d.residentMemoryBytes),
  },
  {
    name: 'helo_server_cpu_seconds_total',
    help: 'CPU time used by every process of the server (a cluster: workers that exited included).',
    type: 'counter',
    samples: single((d) => d.cpuSeconds),
  },
  {
    name: 'helo_store_writable',
    help: '1 unless the last group commit failed.',
    type: 'gauge',
    samples: single((d) => (d.lastCommitOk ? 1 : 0)),
  },
];

/** The process metrics, collected once per process whatever the number of servers in it. */
let processRegistry: Registry | null = null;
function sharedProcessRegistry(): Registry {
  if (processRegistry === null) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry });
  }
  return processRegistry;
}

/** Renders `CountersData` (plus this process's metrics) as Prometheus text. */
export class PrometheusExposition {
  readonly #registry: Registry;
  #current: CountersData | null = null;
  /** Scrapes one at a time: each reads `#current` while it is rendered. */
  #previous: Promise<unknown> = Promise.resolve();

  constructor(extra: readonly MetricDefinition[] = []) {
    const helo = new Registry();
    for (const definition of [...HELO_METRICS, ...extra]) {
      const metric = {
        name: definition.name,
        help: definition.help,
        type: definition.type,
        aggregator: 'sum',
        get: () => ({
          name: definition.name,
          help: definition.help,
          type: definition.type,
          aggregator: 'sum',
          values: this.#current === null ? [] : definition.samples(this.#current),
        }),
      };
      // prom-client formats any object with this shape (its own cluster
      // aggregation registers the same kind of object).
      helo.registerMetric(metric as unknown as Metric);
    }
    this.#registry = Registry.merge([sharedProcessRegistry(), helo]);
  }

  render(data: CountersData): Promise<string> {
    const rendered = this.#previous.then(async () => {
      this.#current = data;
      try {
        return await this.#registry.metrics();
      } finally {
        this.#current = null;
      }
    });
    this.#previous = rendered.catch(() => undefined);
    return rendered;
  }
}

export type { MetricDefinition };
