/**
 * What every concurrency model's server shares: the options it starts
 * with, what it offers its caller (`RunningServer`), and the small pieces
 * each would otherwise copy: the addresses, session ids, and a shutdown that
 * runs once and kills what outlives the grace period.
 *
 * server.ts (event-loop, sequential), fork/fork-server.ts and
 * cluster/cluster-server.ts each extend `ServerBase`; run-server.ts picks one.
 */
import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import type { Admission, RejectReason } from './admission.js';
import { createLogger } from './logger.js';
import type { Insight } from './observe/observatory.js';
import type { ServerCounters } from './observe/server-counters.js';
import type { ServerOptions } from './options.js';
import type { CpuWorkRunner } from './simulated-work.js';
import { tcpUrl } from './transports/tcp.js';
import type { ListenFds } from './transports/activation.js';

export interface StartServerOptions extends Partial<ServerOptions> {
  /** Where payloads go. The caller owns it: the server never closes it. */
  readonly store: Store;
  /** Defaults to a JSON logger on stderr at `logLevel`. */
  readonly logger?: Logger;
  /**
   * Where the server counts what it does (`/metrics`, the dashboard). Give
   * the same object's `onCommit` to the store to count its commits too.
   */
  readonly counters?: ServerCounters;
  /**
   * Listening sockets passed by socket activation (transports/activation.ts):
   * each listener named here uses its descriptor instead of binding.
   */
  readonly listenFds?: ListenFds | null;
}

/**
 * What a cluster worker's server gets from its primary (cluster/worker.ts),
 * or a threads-mode server from its pool; not part of the public options.
 */
export interface ServerInternals {
  /**
   * Who decides whether a connection may be served. Defaults to exact
   * limits counted in this process; a cluster worker asks its primary.
   */
  readonly admission?: Admission;
  /**
   * With --proxy-protocol: the per-IP limit, asked once the PROXY header
   * names the client (docs/PROTOCOL.md §10); `admission` then holds only
   * the connection limit, taken at accept.
   */
  readonly perIpAfterHeader?: Admission;
  /**
   * Where the HTTP port gets metrics and the dashboard: by default this
   * server's own; a cluster worker's comes from its primary.
   */
  readonly insight?: Insight;
  /** `--mode threads`: each request's `--work-cpu-ms` runs on this pool, not on the event loop. */
  readonly cpuWork?: CpuWorkRunner;
}

export interface ServerStats {
  readonly connectionsTotal: number;
  /** Connections open now, waiting ones included. */
  readonly connectionsCurrent: number;
  /** Sequential mode: clients connected and waiting for their turn. */
  readonly waiting: number;
  readonly rejected: Readonly<Record<RejectReason, number>>;
  /** Payloads acknowledged by sessions that have closed (counted at session close). */
  readonly payloadsStored: number;
}

/** What every concurrency model's server offers its caller (the CLI, tests). */
export interface RunningServer {
  readonly options: ServerOptions;
  readonly port: number;
  readonly host: string;
  /** `tcp://127.0.0.1:7777`, with brackets around an IPv6 host. */
  readonly url: string;
  /** Every address listened on: `url` first, then `unix:…`, `tls://…`. */
  readonly urls: readonly string[];
  readonly stats: ServerStats;
  /** SIGHUP: read the TLS certificate files again (no-op without TLS). */
  reloadTls(): void;
  /** Graceful shutdown (README, "Exit statuses and signals"); safe to call twice. */
  close(): Promise<void>;
  /** Settles if the server gives up on its own (a cluster whose workers cannot start). */
  readonly failure?: Promise<Error>;
}

export function emptyRejectCounts(): Record<RejectReason, number> {
  return { 'max-connections': 0, 'max-connections-per-ip': 0, shutdown: 0, proxy: 0 };
}

/** After the grace period, processes still running get this long before SIGKILL (fork, cluster). */
export const KILL_AFTER_GRACE_MS = 1_000;

/** The parts of `RunningServer` every model has in common. */
export abstract class ServerBase implements RunningServer {
  readonly options: ServerOptions;
  readonly logger: Logger;
  /** Session ids are `<boot id>-<counter>`: unique across restarts, cheap to make. */
  readonly #bootId = randomBytes(4).toString('hex');
  #sessionCounter = 0;
  #isShuttingDown = false;
  #closed: Promise<void> | null = null;

  protected constructor(options: ServerOptions, logger: Logger | undefined) {
    this.options = options;
    this.logger = logger ?? createLogger(options.logLevel);
  }

  abstract get port(): number;
  abstract get urls(): readonly string[];
  abstract get stats(): ServerStats;

  get host(): string {
    return this.options.host;
  }

  get url(): string {
    return tcpUrl(this.host, this.port);
  }

  reloadTls(): void {}

  /** From the first moment of `close()` on. */
  protected get isShuttingDown(): boolean {
    return this.#isShuttingDown;
  }

  protected newSessionId(): string {
    return `${this.#bootId}-${(++this.#sessionCounter).toString(36)}`;
  }

  /** Graceful shutdown (README, "Exit statuses and signals"); safe to call twice. */
  close(): Promise<void> {
    return this.closeWith(() => this.shutdown());
  }

  /** Starts `closing` unless a close has started already; either way, the one in progress. */
  protected closeWith(closing: () => Promise<void>): Promise<void> {
    this.#isShuttingDown = true;
    this.#closed ??= closing();
    return this.#closed;
  }

  protected abstract shutdown(): Promise<void>;

  /**
   * Runs `kill` if the shutdown is not over `extraMs` after the grace
   * period; the returned function cancels it.
   */
  protected afterGrace(kill: () => void, extraMs = 0): () => void {
    const timer = setTimeout(kill, this.options.shutdownGraceMs + extraMs);
    return () => clearTimeout(timer);
  }
}
