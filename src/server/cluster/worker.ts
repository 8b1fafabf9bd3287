/**
 * The program each cluster worker runs: the event-loop server on the
 * listening socket all workers share, with the store and the connection
 * limit held by the primary (see cluster-server.ts).
 */
import { ProcessError } from '../../errors.js';
import { RemoteStore } from '../ipc/remote-store.js';
import { parentChannel, sendIfConnected } from '../ipc/messages.js';
import { answerRequests } from '../ipc/rpc.js';
import type { CountersData } from '../observe/server-counters.js';
import { createLogger, flushLogger } from '../logger.js';
import type { ServerOptions } from '../options.js';
import { HeloServer } from '../server.js';
import type { ListenFds } from '../transports/activation.js';
import {
  COUNTERS_RPC,
  WORKER_FDS_ENV,
  WORKER_OPTIONS_ENV,
  type WorkerListenFailed,
  type WorkerListening,
  type WorkerStats,
} from './cluster-messages.js';
import { SlotAdmission } from './connection-slots.js';
import { RemoteInsight } from './remote-insight.js';

/** How often the worker tells the primary its counters. */
const STATS_EVERY_MS = 1_000;

const primary = parentChannel();
const options = JSON.parse(process.env[WORKER_OPTIONS_ENV] ?? '{}') as ServerOptions;
const listenFds = JSON.parse(process.env[WORKER_FDS_ENV] ?? '{}') as ListenFds;
const logger = createLogger(options.logLevel);
const store = new RemoteStore(primary);
// docs/PROTOCOL.md §10: behind a balancer the slot is taken at accept and
// the per-IP count asked once the PROXY header names the client.
const perIpAfterHeader = options.proxyProtocol && options.maxConnectionsPerIp > 0;
const slots = new SlotAdmission(primary, perIpAfterHeader ? 0 : options.maxConnectionsPerIp);
const server = new HeloServer(
  { ...options, mode: 'event-loop', store, logger, listenFds },
  {
    admission: slots,
    ...(perIpAfterHeader ? { perIpAfterHeader: slots.perIpOnly() } : {}),
    // /metrics and the dashboard cover the whole cluster: the primary answers them.
    ...(options.httpPort === null ? {} : { insight: new RemoteInsight(primary) }),
  },
);

let lastCounters: CountersData | null = null;
let isCountersFailureLogged = false;
/**
 * The counters now, or the last ones read: reading them reads this
 * process's memory from /proc, which fails while every descriptor is taken
 * (EMFILE), and that must not end the worker (docs/RELIABILITY.md).
 */
function countersNow(): CountersData | null {
  try {
    lastCounters = server.countersData();
  } catch (error) {
    if (!isCountersFailureLogged) {
      isCountersFailureLogged = true;
      logger.warn({ err: String(error) }, 'counters not read; sending the last ones');
    }
  }
  return lastCounters;
}

function reportStats(): void {
  const counters = countersNow();
  if (counters === null) return;
  sendIfConnected(primary, { type: 'helo:stats', counters } satisfies WorkerStats);
}

answerRequests(
  primary,
  COUNTERS_RPC,
  () => {
    const counters = countersNow();
    // The primary then counts this worker as of its last report.
    if (counters === null) throw new ProcessError('no counters read yet');
    return counters;
  },
  // Answered at once (no promise), so never more than one at a time.
  { maxConcurrent: 1 },
);

let isExiting = false;
/** Set once every listener is open: before that, there are no sessions to drain. */
let isListening = false;

async function exit(): Promise<void> {
  if (isExiting) return;
  isExiting = true;
  if (!isListening) {
    // Stopped while starting (the primary's start failed, or a signal came
    // early): nothing was served, and the primary's one line says why.
    flushLogger(logger);
    process.exit(0);
  }
  await server.close();
  await store.close();
  if (primary.connected !== false) reportStats();
  flushLogger(logger);
  process.exit(0);
}

// Stop signals, to the primary (which forwards them) or to the whole group.
process.on('SIGTERM', () => void exit());
process.on('SIGINT', () => void exit());
process.on('SIGHUP', () => server.reloadTls());

try {
  await server.listen();
  isListening = true;
  primary.send({
    type: 'helo:listening',
    port: server.port,
    urls: server.urls,
  } satisfies WorkerListening);
  setInterval(reportStats, STATS_EVERY_MS).unref();
} catch (error) {
  // Nothing was served, so a stop signal from the primary has nothing to
  // close (and no shutdown to log): the primary's one line says why.
  isExiting = true;
  const message = error instanceof Error ? error.message : String(error);
  primary.send({ type: 'helo:listen-failed', message } satisfies WorkerListenFailed);
  flushLogger(logger);
  process.exitCode = 1;
  process.disconnect();
}
