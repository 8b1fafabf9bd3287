/**
 * `--mode fork`: the classic Unix server. The parent accepts each
 * connection and hands the socket to a new child process, which runs the
 * session and exits; the parent goes straight back to accepting, counts
 * its children against `--max-connections` and reaps them when they exit.
 *
 * What it teaches: isolation (a child that crashes takes only its own
 * client with it) at a price (every connection pays for starting a
 * process: tens of milliseconds and tens of MiB for Node).
 *
 * The parent owns the store; children send their payloads to it over IPC
 * (ipc/remote-store.ts), so all children share its group commits.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import type { Server, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { Store } from '../../store/store.js';
import { ConnectionLimits, refuseSocket, type RejectReason } from '../admission.js';
import { hostStore, type StoreHostStats } from '../ipc/store-host.js';
import { isMessage, sendIfConnected } from '../ipc/messages.js';
import { boundPort, listenTcp, tcpUrl } from '../listener.js';
import { createLogger } from '../logger.js';
import { resolveServerOptions, type ServerOptions } from '../options.js';
import {
  emptyRejectCounts,
  type RunningServer,
  type ServerStats,
  type StartServerOptions,
} from '../server.js';
import type { ChildReady, ServeSession } from './fork-messages.js';

const SESSION_CHILD = fileURLToPath(new URL('./session-child.js', import.meta.url));

/** After the grace period, children still running get this long before SIGKILL. */
const KILL_AFTER_GRACE_MS = 1_000;

interface SessionChild {
  readonly process: ChildProcess;
  readonly ip: string;
  readonly session: string;
  /** The client's socket until the child has it; null afterwards. */
  socket: Socket | null;
}

export class ForkServer implements RunningServer {
  readonly options: ServerOptions;
  readonly logger: Logger;
  readonly #store: Store;
  readonly #limits: ConnectionLimits;
  readonly #children = new Set<SessionChild>();
  readonly #refused = new Set<Socket>();
  readonly #storeStats: StoreHostStats = { stored: 0, failed: 0 };
  readonly #bootId = randomBytes(4).toString('hex');
  readonly #rejected = emptyRejectCounts();
  #server: Server | null = null;
  #sessionCounter = 0;
  #connectionsTotal = 0;
  #sessionsHandedOver = 0;
  #isShuttingDown = false;
  #closed: Promise<void> | null = null;
  #onAllExited: (() => void) | null = null;

  constructor(options: StartServerOptions) {
    const { store, logger, ...rest } = options;
    this.options = resolveServerOptions({ ...rest, mode: 'fork' });
    this.logger = logger ?? createLogger(this.options.logLevel);
    this.#store = store;
    this.#limits = new ConnectionLimits(
      this.options.maxConnections,
      this.options.maxConnectionsPerIp,
    );
  }

  get port(): number {
    return this.#server === null ? this.options.port : boundPort(this.#server, this.options.port);
  }

  get host(): string {
    return this.options.host;
  }

  get url(): string {
    return tcpUrl(this.host, this.port);
  }

  /** Fork mode serves TCP only. */
  get urls(): string[] {
    return [this.url];
  }

  reloadTls(): void {}

  get stats(): ServerStats {
    return {
      connectionsTotal: this.#connectionsTotal,
      connectionsCurrent: this.#children.size,
      waiting: 0,
      rejected: { ...this.#rejected },
      payloadsStored: this.#storeStats.stored,
    };
  }

  /** Sockets handed to a child process that has started: from then on, that child reads them. */
  get sessionsHandedOver(): number {
    return this.#sessionsHandedOver;
  }

  /** Process ids of the session children now running (for tests and the curious). */
  get childPids(): number[] {
    return [...this.#children].flatMap((child) => child.process.pid ?? []);
  }

  async listen(): Promise<void> {
    const { host, port } = this.options;
    // pauseOnConnect: the parent never reads a byte; the child does all of it.
    this.#server = await listenTcp({ host, port, pauseOnConnect: true }, this.#serverOnConnection);
    this.#server.on('error', (error) => this.logger.error({ err: error.message }, 'server error'));
    this.logger.info({ urls: this.urls, mode: 'fork' }, 'listening');
  }

  readonly #serverOnConnection = (socket: Socket): void => {
    const ip = socket.remoteAddress ?? '';
    const reason = this.#isShuttingDown ? 'shutdown' : this.#limits.admit(ip);
    if (reason !== null) {
      this.#refuse(socket, reason);
      return;
    }
    this.#connectionsTotal++;
    const session = `${this.#bootId}-${(++this.#sessionCounter).toString(36)}`;
    this.#forkSessionChild(socket, ip, session);
  };

  #refuse(socket: Socket, reason: RejectReason): void {
    this.#rejected[reason]++;
    this.#refused.add(socket);
    refuseSocket(socket, () => this.#refused.delete(socket));
  }

  #forkSessionChild(socket: Socket, ip: string, session: string): void {
    socket.on('error', ignoreError);
    const childProcess = fork(SESSION_CHILD, [], {
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const child: SessionChild = { process: childProcess, ip, session, socket };
    this.#children.add(child);
    const stopHosting = hostStore(childProcess, this.#store, this.#storeStats);
    let isGone = false;
    const onGone = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (isGone) return;
      isGone = true;
      stopHosting();
      this.#children.delete(child);
      this.#limits.release(ip);
      // A child that died before taking its socket leaves the client to us.
      child.socket?.destroy();
      if (code !== 0) {
        this.logger.warn(
          { session, childPid: childProcess.pid, code, signal },
          'session process ended abnormally; only its own client is affected',
        );
      }
      if (this.#children.size === 0) this.#onAllExited?.();
    };
    childProcess.on('error', (error) => {
      this.logger.error({ session, err: error.message }, 'session process error');
      // A child that could not start (EMFILE: no descriptors for its pipes)
      // emits no 'exit': without this its client and its slot would be held forever.
      if (childProcess.pid === undefined) onGone(null, null);
    });
    childProcess.on('message', (message) => {
      if (!isMessage<ChildReady>(message, 'helo:ready') || child.socket === null) return;
      const serve: ServeSession = { type: 'helo:serve', session, options: this.options };
      // Once sent, the socket belongs to the child: Node closes the parent's copy.
      if (sendIfConnected(childProcess, serve, child.socket)) this.#sessionsHandedOver++;
      else child.socket.destroy();
      child.socket = null;
    });
    childProcess.once('exit', onGone);
    this.logger.debug({ session, childPid: childProcess.pid, peer: ip }, 'session process started');
  }

  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  /**
   * Stop accepting; every child shuts its session down gracefully (the
   * signal may already have reached it through the process group; twice is
   * harmless); children still running after the grace period are killed.
   */
  async #shutdown(): Promise<void> {
    this.#isShuttingDown = true;
    this.logger.info({ children: this.#children.size }, 'shutting down');
    // The listening socket closes at once. Not awaiting close()'s callback on
    // purpose: for sockets passed to children, Node waits for each child to
    // report them closed, and a child that has exited never will.
    this.#server?.close();
    const allExited = new Promise<void>((resolve) => {
      this.#onAllExited = resolve;
      if (this.#children.size === 0) resolve();
    });
    for (const child of this.#children) {
      if (child.socket !== null) {
        // Still starting: the client never reached its session.
        const socket = child.socket;
        child.socket = null;
        this.#refuse(socket, 'shutdown');
        child.process.kill('SIGKILL');
      } else {
        child.process.kill('SIGTERM');
      }
    }
    const killer = setTimeout(() => {
      for (const child of this.#children) child.process.kill('SIGKILL');
    }, this.options.shutdownGraceMs + KILL_AFTER_GRACE_MS);
    await allExited;
    clearTimeout(killer);
    for (const socket of this.#refused) socket.destroy();
    this.logger.info('server closed');
  }
}

function ignoreError(): void {}
