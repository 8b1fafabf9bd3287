/**
 * `--mode cluster --workers N`: N worker processes, started in advance,
 * share one listening socket; each runs the event-loop server. A worker
 * that dies is replaced (never during shutdown). What it teaches: several
 * processes use several CPUs, which one event loop cannot.
 *
 * Who accepts: Node's default cluster scheduling has the primary accept
 * every connection and pass it to a worker over IPC, which cost 31–59% of
 * short-session throughput on this project's machines. So the kernel
 * spreads the accepts instead (`SCHED_NONE`: every worker accepts on the
 * shared socket), and the server-wide `--max-connections` is kept by a
 * pool of slots the primary lends to the workers (connection-slots.ts).
 *
 * The primary owns the store; workers send payloads to it over IPC
 * (ipc/remote-store.ts), so every worker's payloads share its group commits
 * and no two processes ever compete for the SQLite file's write lock.
 */
import cluster, { type Worker } from 'node:cluster';
import { createSocket } from 'node:dgram';
import { createServer, isIPv6 } from 'node:net';
import { fileURLToPath } from 'node:url';
import { InvalidOptionError, ListenError, ProcessError } from '../../errors.js';
import type { Store } from '../../store/store.js';
import { hostStore, type StoreHostStats } from '../ipc/store-host.js';
import { isMessage, type IpcPeer } from '../ipc/messages.js';
import { answerRequests, IpcRequester } from '../ipc/rpc.js';
import type { Observatory } from '../observe/observatory.js';
import { RecentRecords, storeNotingRecent } from '../observe/recent-records.js';
import {
  addCounters,
  ServerCounters,
  streamConnections,
  withoutCurrent,
  type CountersData,
} from '../observe/server-counters.js';
import { resolveServerOptions, type ServerOptions } from '../options.js';
import {
  KILL_AFTER_GRACE_MS,
  ServerBase,
  type ServerStats,
  type StartServerOptions,
} from '../running-server.js';
import type { ListenFds } from '../transports/activation.js';
import { boundPort } from '../transports/tcp.js';
import { UNIX_BIND_PATH_ENV } from '../transports/unix.js';
import { PrivateUnixSocket, removeStaleUnixSocket } from '../transports/unix-socket-file.js';
import {
  COUNTERS_RPC,
  INSIGHT_RPC,
  WORKER_FDS_ENV,
  WORKER_OPTIONS_ENV,
  type InsightQuestion,
  type WorkerListenFailed,
  type WorkerListening,
  type WorkerStats,
} from './cluster-messages.js';
import { SlotPool } from './connection-slots.js';

const WORKER_PROGRAM = fileURLToPath(new URL('./worker.js', import.meta.url));

/** A worker dying sooner than this after its start is "crash looping": wait before the next. */
const CRASH_LOOP_MS = 2_000;
/** The wait before replacing a crash-looping worker doubles from the first to the cap. */
const RESPAWN_BACKOFF_FIRST_MS = 100;
const RESPAWN_BACKOFF_MAX_MS = 5_000;
/** Workers dying before they listen, this many in a row: the cluster gives up (exit 1). */
const MAX_START_FAILURES = 10;
/** Questions from one worker's HTTP port being answered at once; beyond, refused (bounded work). */
const MAX_INSIGHT_ANSWERS_PER_WORKER = 16;
/** A worker that does not send its counters this fast is counted as of its last report. */
const COUNTERS_TIMEOUT_MS = 1_000;

interface WorkerState {
  readonly worker: Worker;
  readonly startedAt: number;
  isListening: boolean;
  /** Why it could not listen, as it said. */
  failure: string | null;
  readonly detach: () => void;
  /** Its latest metrics counters (answers to requests, or the per-second report). */
  counters: CountersData | null;
  /** Asks it for its counters now. */
  readonly countersNow: IpcRequester<null, CountersData>;
}

export class ClusterServer extends ServerBase {
  readonly #store: Store;
  readonly #slots: SlotPool;
  readonly #workers = new Map<Worker, WorkerState>();
  readonly #storeStats: StoreHostStats = { stored: 0, failed: 0 };
  /** Counters of workers that have exited, so the totals survive them. */
  #port = 0;
  #urls: readonly string[] = [];
  /** `--unix`: the workers' shared socket, bound privately and put in place here. */
  #unixSocket: PrivateUnixSocket | null = null;
  #workersReplaced = 0;
  /** The options workers get: `options` with every port given as 0 chosen (#choosePorts). */
  #workerOptions: ServerOptions;
  /** Sockets passed by socket activation, shared with every worker. */
  readonly #fds: ListenFds;
  /** Workers that died young in a row: the exponent of the replacement backoff. */
  #youngDeaths = 0;
  /** Workers that died before listening, in a row. */
  #startFailures = 0;
  readonly #replacementTimers = new Set<NodeJS.Timeout>();
  #giveUp: (error: Error) => void = () => {};
  /**
   * Settles only when the cluster gives up (workers keep dying during
   * start-up); the CLI then exits non-zero with its message.
   */
  readonly failure = new Promise<Error>((resolve) => (this.#giveUp = resolve));
  /** The primary's own counters: the store's commits (workers count the rest). */
  readonly #counters: ServerCounters;
  /** What workers that have exited had counted. */
  #exitedCounters: CountersData | null = null;
  readonly #recent: RecentRecords | null;
  #observatory: Observatory | null = null;

  constructor(options: StartServerOptions) {
    const { store, logger, counters, listenFds, ...rest } = options;
    super(resolveServerOptions({ ...rest, mode: 'cluster' }), logger);
    this.#fds = listenFds ?? {};
    if (this.#fds.udp !== undefined) {
      // A worker would open the descriptor number in its own process, where it is not:
      // dgram, unlike net, does not ask the primary for a passed socket.
      throw new InvalidOptionError(
        'cluster mode cannot serve a UDP socket passed by socket activation; use another --mode',
      );
    }
    this.#counters = counters ?? new ServerCounters();
    // The primary owns the store, so it sees every worker's payloads: the dashboard's recent records.
    this.#recent = this.options.httpPort === null ? null : new RecentRecords();
    this.#store = this.#recent === null ? store : storeNotingRecent(store, this.#recent);
    this.#slots = new SlotPool(this.options.maxConnections, this.options.maxConnectionsPerIp);
    this.#workerOptions = this.options;
  }

  get port(): number {
    return this.#port;
  }

  /** Every address the workers listen on. */
  get urls(): readonly string[] {
    return this.#urls;
  }

  /** Each worker reads its certificates again. */
  override reloadTls(): void {
    for (const { worker } of this.#workers.values()) worker.process.kill('SIGHUP');
  }

  /** From the workers' latest reports (at most a second old) and the exact stored count. */
  get stats(): ServerStats {
    const counters = this.#latestCounters();
    return {
      connectionsTotal: streamConnections(counters.connectionsTotal),
      connectionsCurrent: streamConnections(counters.connectionsCurrent),
      waiting: 0,
      rejected: { ...counters.rejected },
      payloadsStored: this.#storeStats.stored,
    };
  }

  get workerPids(): number[] {
    return [...this.#workers.keys()].flatMap((worker) => worker.process.pid ?? []);
  }

  /** How many workers have been replaced after dying. */
  get workersReplaced(): number {
    return this.#workersReplaced;
  }

  /** Starts the workers; resolves when every one is listening. */
  async listen(): Promise<void> {
    if (!cluster.isPrimary) throw new ProcessError('a cluster is started from a primary process');
    // Must be set before the first worker starts; see the comment at the top.
    cluster.schedulingPolicy = cluster.SCHED_NONE;
    cluster.setupPrimary({ exec: WORKER_PROGRAM, args: [], serialization: 'advanced' });
    // Done here, once: workers racing to replace a stale socket file would
    // find each other's new one and give up.
    if (this.options.unixPath !== null) {
      await removeStaleUnixSocket(this.options.unixPath);
      this.#unixSocket = PrivateUnixSocket.create(this.options.unixPath);
    }
    this.#workerOptions = await this.#choosePorts();
    const started = Array.from({ length: this.options.workers }, () => this.#startWorker());
    try {
      const listening = await Promise.all(started);
      await this.#unixSocket?.place(this.options.unixMode);
      this.#port = listening[0]!.port;
      this.#urls = listening[0]!.urls;
    } catch (error) {
      // Not a shutdown: the start failed, and the caller reports why in one line.
      await this.closeWith(() => this.#stopWorkers());
      this.#unixSocket?.release();
      throw error;
    }
    cluster.on('exit', this.#clusterOnExit);
    if (this.#recent !== null) {
      const { Observatory } = await import('../observe/observatory.js');
      this.#observatory = new Observatory({
        mode: 'cluster',
        workers: () => this.#workers.size,
        collect: () => this.#collectCounters(),
        recent: this.#recent,
      });
    }
    this.logger.info(
      { urls: this.urls, mode: 'cluster', workers: this.options.workers },
      'listening',
    );
  }

  /**
   * Every listener given as port 0 gets a free port now, before any worker
   * starts. Workers share one socket per address, which closes when the
   * last worker holding it dies; replacements asking for port 0 again would
   * then get a new random port, and clients (and tests) would lose the
   * server. Asking for the number from the start keeps it. The ports are
   * found by binding and closing a socket: another program could take one
   * in between (the first worker then fails to start, with a clear line).
   */
  async #choosePorts(): Promise<ServerOptions> {
    const { host, port, tlsPort, httpPort, udpPort } = this.options;
    const held: (() => void)[] = [];
    try {
      // Held open until all are chosen, so that two listeners never get the same.
      const tcp = async (asked: number): Promise<number> => {
        if (asked !== 0) return asked;
        const probe = createServer();
        await new Promise<void>((resolve, reject) => {
          probe.once('error', reject);
          probe.listen({ host, port: 0 }, resolve);
        });
        held.push(() => probe.close());
        return boundPort(probe, 0);
      };
      const udp = async (asked: number): Promise<number> => {
        if (asked !== 0) return asked;
        const probe = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
        await new Promise<void>((resolve, reject) => {
          probe.once('error', reject);
          probe.bind({ address: host, port: 0 }, resolve);
        });
        held.push(() => probe.close());
        return probe.address().port;
      };
      return {
        ...this.options,
        port: await tcp(port),
        tlsPort: tlsPort === null ? null : await tcp(tlsPort),
        httpPort: httpPort === null ? null : await tcp(httpPort),
        udpPort: udpPort === null ? null : await udp(udpPort),
      };
    } catch {
      // The workers will say what is wrong with the address when they try it.
      return this.options;
    } finally {
      for (const close of held) close();
    }
  }

  /** Resolves once the worker listens; rejects if it cannot. */
  #startWorker(): Promise<WorkerListening> {
    const worker = cluster.fork({
      [WORKER_OPTIONS_ENV]: JSON.stringify(this.#workerOptions),
      ...(this.#unixSocket === null ? {} : { [UNIX_BIND_PATH_ENV]: this.#unixSocket.bindPath }),
      // Passed sockets (transports/activation.ts): a worker's listen({ fd }) asks the
      // primary, which opens the descriptor in its own process and shares it.
      [WORKER_FDS_ENV]: JSON.stringify(this.#fds),
    });
    const peer = worker.process as IpcPeer;
    const stopHosting = hostStore(peer, this.#store, this.#storeStats);
    const releaseSlots = this.#slots.attach(peer);
    const stopAnswering = answerRequests(peer, INSIGHT_RPC, this.#answerInsight, {
      maxConcurrent: MAX_INSIGHT_ANSWERS_PER_WORKER,
      busy: 'too many questions from this worker at once',
    });
    const countersNow = new IpcRequester(peer, COUNTERS_RPC, {
      // Never reached: a collect asks each worker once, and collects run
      // only for the insight answers (bounded per worker above) and the
      // dashboard's sampler. A refused request counts the worker as of its
      // last report, like an unanswered one.
      maxOutstanding: MAX_INSIGHT_ANSWERS_PER_WORKER * this.options.workers + 1,
    });
    const state: WorkerState = {
      worker,
      startedAt: Date.now(),
      isListening: false,
      failure: null,
      counters: null,
      countersNow,
      detach: () => {
        stopHosting();
        releaseSlots();
        stopAnswering();
        countersNow.close();
      },
    };
    this.#workers.set(worker, state);
    worker.process.on('error', (error) =>
      this.logger.error({ workerPid: worker.process.pid, err: error.message }, 'worker error'),
    );
    worker.on('message', (message: unknown) => {
      if (isMessage<WorkerStats>(message, 'helo:stats')) state.counters = message.counters;
    });
    return new Promise<WorkerListening>((resolve, reject) => {
      worker.on('message', (message: unknown) => {
        if (isMessage<WorkerListening>(message, 'helo:listening')) {
          state.isListening = true;
          this.#startFailures = 0;
          resolve(message);
        }
        if (isMessage<WorkerListenFailed>(message, 'helo:listen-failed')) {
          state.failure = message.message;
          reject(new ListenError(message.message));
        }
      });
      worker.once('exit', (code, signal) =>
        reject(new ListenError(`a cluster worker exited while starting (${signal ?? code})`)),
      );
    });
  }

  readonly #clusterOnExit = (worker: Worker, code: number, signal: string | null): void => {
    const state = this.#workers.get(worker);
    if (state === undefined) return;
    this.#forget(state);
    if (this.isShuttingDown) return;
    if (!state.isListening) {
      this.#startFailures++;
      if (this.#startFailures >= MAX_START_FAILURES) {
        const cause = state.failure ?? `it exited with ${signal ?? `status ${code}`}`;
        this.#stopAndGiveUp(
          new ListenError(
            `cluster workers died during start-up ${this.#startFailures} times in a row; ` +
              `giving up (the last: ${cause})`,
          ),
        );
        return;
      }
    }
    const isYoung = !state.isListening || Date.now() - state.startedAt < CRASH_LOOP_MS;
    const delayMs = isYoung
      ? Math.min(RESPAWN_BACKOFF_MAX_MS, RESPAWN_BACKOFF_FIRST_MS * 2 ** this.#youngDeaths)
      : 0;
    this.#youngDeaths = isYoung ? this.#youngDeaths + 1 : 0;
    this.logger.warn(
      { workerPid: worker.process.pid, code, signal, failure: state.failure, delayMs },
      'cluster worker died; starting a replacement',
    );
    const replace = (): void => {
      if (this.isShuttingDown) return;
      this.#workersReplaced++;
      this.#startWorker()
        // After every worker had died the socket was closed; the replacement
        // bound a new one privately, which goes in place of the dead one.
        .then(() => this.#unixSocket?.placeIfBound(this.options.unixMode))
        .catch((error: unknown) =>
          this.logger.warn({ err: String(error) }, 'replacement worker failed to start'),
        );
    };
    if (delayMs === 0) {
      replace();
      return;
    }
    // Not unref()ed: while it waits, this timer may be all that keeps the primary alive.
    const timer = setTimeout(() => {
      this.#replacementTimers.delete(timer);
      replace();
    }, delayMs);
    this.#replacementTimers.add(timer);
  };

  /** Workers cannot start: stop the rest and let the caller exit non-zero. */
  #stopAndGiveUp(error: Error): void {
    void this.close().then(() => this.#giveUp(error));
  }

  #forget(state: WorkerState): void {
    if (!this.#workers.delete(state.worker)) return;
    state.detach();
    if (state.counters !== null) {
      const totals = withoutCurrent(state.counters);
      this.#exitedCounters =
        this.#exitedCounters === null ? totals : addCounters(this.#exitedCounters, totals);
    }
  }

  /**
   * The whole cluster's counters: each live worker is asked now (its last
   * report stands in if it does not answer in time), plus the primary's
   * own (commits) and those of workers that have exited.
   */
  async #collectCounters(): Promise<CountersData> {
    await Promise.all(
      [...this.#workers.values()].map((state) =>
        state.countersNow.request(null, { timeoutMs: COUNTERS_TIMEOUT_MS }).then(
          (counters) => {
            state.counters = counters;
          },
          () => {},
        ),
      ),
    );
    return this.#latestCounters();
  }

  /** The primary's own counters, those of exited workers, and each live worker's latest. */
  #latestCounters(): CountersData {
    let total = this.#counters.toData();
    if (this.#exitedCounters !== null) total = addCounters(total, this.#exitedCounters);
    for (const state of this.#workers.values()) {
      if (state.counters !== null) total = addCounters(total, state.counters);
    }
    return total;
  }

  /** A worker's HTTP port asks for the cluster's metrics, dashboard or readiness. */
  readonly #answerInsight = (question: InsightQuestion): Promise<unknown> => {
    const observatory = this.#observatory;
    if (observatory === null) throw new ProcessError('the cluster is still starting');
    return question === 'metrics'
      ? observatory.metrics()
      : question === 'snapshot'
        ? observatory.snapshot()
        : observatory.storeWritable();
  };

  /**
   * No more replacements; every worker shuts down gracefully (SIGTERM; it
   * may already have it from the process group); stragglers are killed.
   * The store stays open until the last worker has gone, so every payload
   * a worker acknowledges was stored by this process.
   */
  protected async shutdown(): Promise<void> {
    this.logger.info({ workers: this.#workers.size }, 'shutting down');
    await this.#stopWorkers();
    this.#unixSocket?.release();
    this.#observatory?.close();
    this.logger.info('server closed');
  }

  async #stopWorkers(): Promise<void> {
    for (const timer of this.#replacementTimers) clearTimeout(timer);
    this.#replacementTimers.clear();
    const exits = [...this.#workers.values()].map(
      (state) =>
        new Promise<void>((resolve) => {
          if (state.worker.process.exitCode !== null || state.worker.process.signalCode !== null) {
            resolve();
            return;
          }
          state.worker.process.once('exit', () => resolve());
          state.worker.process.kill('SIGTERM');
        }),
    );
    const cancelKill = this.afterGrace(() => {
      for (const { worker } of this.#workers.values()) worker.process.kill('SIGKILL');
    }, KILL_AFTER_GRACE_MS);
    await Promise.all(exits);
    cancelKill();
    for (const state of [...this.#workers.values()]) this.#forget(state);
    cluster.off('exit', this.#clusterOnExit);
  }
}
