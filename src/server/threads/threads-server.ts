/**
 * `--mode threads --threads N`: one process, one event loop for the
 * sockets, and N worker threads for the CPU work of each request.
 *
 * Node cannot hand a socket to a worker thread (a `net.Socket` cannot be
 * posted to one, unlike a process's descriptor), so the main thread keeps
 * what needs the sockets: listeners, admission, framing and sessions (the
 * pure core: cheaper than a hop to a thread), the store and every timeout.
 * It is the event-loop server (server.ts) with one difference: a request's
 * `--work-cpu-ms` runs on a thread of the pool (thread-pool.ts) instead of
 * blocking the event loop, and its reply keeps its place in the
 * connection's queue until the thread answers, so replies stay in request
 * order. Without `--work-cpu-ms` the threads have nothing to do.
 *
 * What it teaches beside `cluster`: threads share one process (one heap
 * per thread, but one store, one set of limits, no IPC), start faster and
 * cost less memory than processes; the price is a copied message and a hop
 * each way per request, and the main thread stays the only one doing I/O.
 */
import { HeloServer } from '../server.js';
import { resolveServerOptions } from '../options.js';
import { ServerBase, type ServerStats, type StartServerOptions } from '../running-server.js';
import { ThreadPool } from './thread-pool.js';

export class ThreadsServer extends ServerBase {
  readonly #pool: ThreadPool;
  readonly #server: HeloServer;

  /** `program`: the thread's script; tests give one that fails on purpose. */
  constructor(options: StartServerOptions, program?: URL) {
    const { store, logger, counters, listenFds, ...rest } = options;
    super(resolveServerOptions({ ...rest, mode: 'threads' }), logger);
    this.#pool = new ThreadPool(
      this.options.threads,
      {
        onThreadDied: (error, lostJobs) => {
          this.logger.error(
            { err: error.message, lostJobs },
            'a worker thread died; its clients are closed and a new thread replaces it',
          );
        },
      },
      program,
    );
    this.#server = new HeloServer(
      { ...rest, mode: 'threads', store, logger: this.logger, counters, listenFds },
      { cpuWork: this.#pool },
    );
  }

  /** Starts the threads, then the listeners: ready means every thread runs. */
  async listen(): Promise<void> {
    try {
      await this.#pool.start();
      await this.#server.listen();
    } catch (error) {
      await this.#pool.close();
      throw error;
    }
  }

  /** Threads replaced after dying (tests). */
  get threadsReplaced(): number {
    return this.#pool.replaced;
  }

  get port(): number {
    return this.#server.port;
  }

  get urls(): readonly string[] {
    return this.#server.urls;
  }

  get stats(): ServerStats {
    return this.#server.stats;
  }

  override reloadTls(): void {
    this.#server.reloadTls();
  }

  protected async shutdown(): Promise<void> {
    // Connections first: requests already received still get their thread's answer.
    await this.#server.close();
    await this.#pool.close();
  }
}
