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
import type { BlockList, Server, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import type { Store } from '../../store/store.js';
import { ConnectionLimits, RefusedSockets } from '../admission.js';
import { SlotPool } from '../cluster/connection-slots.js';
import { isTrustedSource, proxyAllowList } from '../proxy-stage.js';
import { hostStore, type StoreHostStats } from '../ipc/store-host.js';
import { isMessage, sendIfConnected } from '../ipc/messages.js';
import { resolveServerOptions } from '../options.js';
import {
  emptyRejectCounts,
  KILL_AFTER_GRACE_MS,
  ServerBase,
  type ServerStats,
  type StartServerOptions,
} from '../running-server.js';
import { boundPort, listenTcp } from '../transports/tcp.js';
import type { ChildReady, ServeSession } from './fork-messages.js';

const SESSION_CHILD = fileURLToPath(new URL('./session-child.js', import.meta.url));

interface SessionChild {
  readonly process: ChildProcess;
  readonly ip: string;
  readonly session: string;
  /** The client's socket until the child has it; null afterwards. */
  socket: Socket | null;
}

export class ForkServer extends ServerBase {
  readonly #store: Store;
  readonly #limits: ConnectionLimits;
  /** --proxy-protocol with --max-connections-per-ip: the children's per-IP questions. */
  readonly #perIpAfterHeader: SlotPool | null;
  readonly #children = new Set<SessionChild>();
  readonly #refused: RefusedSockets;
  readonly #storeStats: StoreHostStats = { stored: 0, failed: 0 };
  readonly #rejected = emptyRejectCounts();
  #server: Server | null = null;
  /** The TCP socket passed by socket activation (transports/activation.ts), if any. */
  readonly #fd: number | undefined;
  #proxyAllow: BlockList | null = null;
  #connectionsTotal = 0;
  #sessionsHandedOver = 0;
  #onAllExited: (() => void) | null = null;

  constructor(options: StartServerOptions) {
    const { store, logger, listenFds, ...rest } = options;
    super(resolveServerOptions({ ...rest, mode: 'fork' }), logger);
    this.#fd = listenFds?.tcp;
    this.#store = store;
    this.#refused = new RefusedSockets(this.#rejected, this.logger);
    // docs/PROTOCOL.md §10: behind a balancer the client's address is known
    // only once the child has read the PROXY header, so the per-IP limit is
    // decided then, by asking this process (the cluster's slot pool, one
    // IPC round trip per connection); the connection limit stays here, at accept.
    const { proxyProtocol, maxConnectionsPerIp } = this.options;
    const perIpAfterHeader = proxyProtocol && maxConnectionsPerIp > 0;
    this.#limits = new ConnectionLimits(
      this.options.maxConnections,
      perIpAfterHeader ? 0 : maxConnectionsPerIp,
    );
    this.#perIpAfterHeader = perIpAfterHeader
      ? new SlotPool(this.options.maxConnections, maxConnectionsPerIp)
      : null;
  }

  get port(): number {
    return this.#server === null ? this.options.port : boundPort(this.#server, this.options.port);
  }

  /** Fork mode serves TCP only. */
  get urls(): string[] {
    return [this.url];
  }

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
    this.#server = await listenTcp(
      { host, port, pauseOnConnect: true, fd: this.#fd },
      this.#serverOnConnection,
    );
    this.#server.on('error', (error) => this.logger.error({ err: error.message }, 'server error'));
    this.logger.info({ urls: this.urls, mode: 'fork' }, 'listening');
  }

  readonly #serverOnConnection = (socket: Socket): void => {
    const ip = socket.remoteAddress ?? '';
    // §10: an untrusted balancer is closed here, before a process is started for it.
    // (The child reads the header: this process never reads a byte.)
    if (this.options.proxyProtocol && !this.isShuttingDown) {
      this.#proxyAllow ??= proxyAllowList(this.options.proxyAllow);
      if (!isTrustedSource(this.#proxyAllow, ip)) {
        socket.destroy();
        this.#rejected.proxy++;
        this.logger.warn(
          { peer: ip, transport: 'tcp', reason: 'source not in --proxy-allow' },
          'connection refused: PROXY protocol',
        );
        return;
      }
    }
    const reason = this.isShuttingDown ? 'shutdown' : this.#limits.admit(ip);
    if (reason !== null) {
      this.#refused.refuse(socket, reason);
      return;
    }
    this.#connectionsTotal++;
    this.#forkSessionChild(socket, ip, this.newSessionId());
  };

  #forkSessionChild(socket: Socket, ip: string, session: string): void {
    socket.on('error', ignoreError);
    const childProcess = fork(SESSION_CHILD, [], {
      serialization: 'advanced',
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const child: SessionChild = { process: childProcess, ip, session, socket };
    this.#children.add(child);
    const stopHosting = hostStore(childProcess, this.#store, this.#storeStats);
    const stopAdmitting = this.#perIpAfterHeader?.attach(childProcess);
    let isGone = false;
    const onGone = (code: number | null, signal: NodeJS.Signals | null): void => {
      if (isGone) return;
      isGone = true;
      stopHosting();
      stopAdmitting?.();
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

  /**
   * Stop accepting; every child shuts its session down gracefully (the
   * signal may already have reached it through the process group; twice is
   * harmless); children still running after the grace period are killed.
   */
  protected async shutdown(): Promise<void> {
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
        this.#refused.refuse(socket, 'shutdown');
        child.process.kill('SIGKILL');
      } else {
        child.process.kill('SIGTERM');
      }
    }
    const cancelKill = this.afterGrace(() => {
      for (const child of this.#children) child.process.kill('SIGKILL');
    }, KILL_AFTER_GRACE_MS);
    await allExited;
    cancelKill();
    this.#refused.destroyAll();
    this.logger.info('server closed');
  }
}

function ignoreError(): void {}
