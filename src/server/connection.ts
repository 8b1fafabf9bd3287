/**
 * One stream connection: socket <-> protocol core <-> store.
 *
 * The core decides what each line means; this driver does the I/O around it:
 *
 *   socket 'data' -> StreamProtocol.push -> one action per line
 *     reply            -> queued in request order
 *     store            -> appendSafely() (store-reply.ts); its 300 DRCV
 *                         (or 500 FAIL) takes its place in the queue and
 *                         waits for the commit
 *   end of the read  -> every reply that is ready goes out in ONE write
 *
 * Replies leave strictly in request order (docs/PROTOCOL.md §2): a reply behind a
 * DATA whose commit is still pending waits for that commit. When the client
 * does not read its replies, the server stops reading from it (backpressure),
 * so a client that pipelines without reading cannot grow the server's memory.
 */
import type { Duplex } from 'node:stream';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { Replies, type ReplyInfo } from '../core/replies.js';
import type { SessionAction } from '../core/session.js';
import { StreamProtocol } from '../core/stream-protocol.js';
import { TelnetFilter, type TelnetSink } from '../core/telnet.js';
import type { Store } from '../store/store.js';
import type { ServerRecorder } from './observe/server-counters.js';
import type { ServerOptions } from './options.js';
import { SimulatedWork, type CpuWorkRunner } from './simulated-work.js';
import { contained, faultFields } from './fault-boundary.js';
import { appendSafely, notStoredReply, storedReply } from './store-reply.js';
import { logSessionClosed } from './logger.js';

/**
 * What a connection is driven over: a TCP, Unix or TLS socket, or a
 * WebSocket seen as a stream of lines (websocket-line-stream.ts).
 */
export type StreamSocket = Duplex & {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
};

/**
 * A reply that waits (for a store commit, for simulated work), or one that
 * queues behind such a reply; it remembers when its request arrived.
 */
class PendingReply {
  bytes: Buffer | null = null;
  /** `performance.now()` when the request was read; -1 for replies no request asked for (TOUT, BUSY). */
  readonly requestedAt: number;
  constructor(requestedAt: number, bytes: Buffer | null = null) {
    this.requestedAt = requestedAt;
    this.bytes = bytes;
  }
}

/** For replies the server sends on its own (`408 TOUT`, `503 BUSY`): not a request's latency. */
const UNREQUESTED = -1;

type QueuedReply = Buffer | PendingReply;

/** The bytes of a queued reply that is ready. */
function bytesOf(entry: QueuedReply): Buffer {
  return entry instanceof PendingReply ? entry.bytes! : entry;
}

/** Replies queued behind a pending commit beyond which reading pauses. */
const MAX_QUEUED_REPLIES = 1024;
/** How long a connection the server has ended may wait for the client's FIN. */
const LINGER_MS = 5_000;
/** With §9 off, a partial line this old gets one warning naming the option (docs/PROTOCOL.md §9). */
const UNTERMINATED_HINT_MS = 2_000;
/** How long a just-accepted connection's first bytes may take to be read when a shutdown starts. */
const FIRST_BYTES_MS = 100;

export type CloseReason =
  | 'quit'
  | 'client-closed'
  | 'reset'
  | 'idle-timeout'
  | 'slow-reader'
  | 'cross-protocol'
  | 'shutdown'
  /** helo's own code threw while serving this client (fault-boundary.ts). */
  | 'fault';

/** Which listener a connection came through. */
export type Transport = 'tcp' | 'unix' | 'tls' | 'ws';

export interface ConnectionSummary {
  readonly session: string;
  readonly peer: string;
  readonly transport: Transport;
  readonly durationMs: number;
  readonly commands: number;
  readonly payloads: number;
  readonly failedPayloads: number;
  readonly bytesIn: number;
  readonly bytesOut: number;
  readonly reason: CloseReason;
  /** Behind a balancer (docs/PROTOCOL.md §10): where the connection really came from; logs show both. */
  readonly proxy?: string;
}

export interface ConnectionContext {
  readonly options: ServerOptions;
  readonly store: Store;
  readonly logger: Logger;
  /** The server's counters (`/metrics`, dashboard). */
  readonly counters: ServerRecorder;
  /** The listener it came through, for logs (and metrics). */
  readonly transport: Transport;
  /** The TLS client certificate's subject, stored with each payload; null otherwise. */
  readonly clientCert: string | null;
  /** docs/PROTOCOL.md §10: the client a PROXY header named (`peer`), or null to use the socket's. */
  readonly peer?: string | null;
  /** docs/PROTOCOL.md §10: the balancer's address, stored as the record's `proxy`; null without. */
  readonly proxy?: string | null;
  /** `--mode threads`: runs each request's `--work-cpu-ms` off the event loop; null to run it here. */
  readonly cpuWork?: CpuWorkRunner | null;
  /** Called once, when the socket has closed. */
  readonly onClose: (connection: Connection, summary: ConnectionSummary) => void;
}

export class Connection {
  readonly session: string;
  readonly peer: string;
  readonly #socket: StreamSocket;
  readonly #context: ConnectionContext;
  readonly #protocol: StreamProtocol;
  readonly #startedAt = Date.now();
  /** `--work-ms` / `--work-cpu-ms`, or null when both are off. */
  readonly #work: SimulatedWork | null;
  /** Threads mode: settles when this connection's latest job on the pool is done. */
  #workDone: Promise<unknown> = Promise.resolve();
  /** `--telnet` (docs/PROTOCOL.md §11) on a byte stream, or null. */
  readonly #telnet: TelnetFilter | null;
  readonly #telnetSink: TelnetSink | null;
  /** §9 off: the warning about a newline-less client was logged (once per session). */
  #hasHintedUnterminated = false;
  /** Lines seen when the hint timer was armed: more since means a newer partial line. */
  #linesAtHint = 0;

  /** Replies not yet written, in request order. */
  #queue: QueuedReply[] = [];
  #pendingReplies = 0;
  #isFlushScheduled = false;
  /** Reading is paused because the client is not reading its replies. */
  #isPaused = false;
  /** Registered with `store.whenReady()`, not woken yet. */
  #isWaitingForStore = false;
  /** Bytes read while the store was backed up, served when it wakes this connection. */
  #held: Buffer | null = null;
  #heldAt = 0;
  /** No more requests will be read: QUIT, EOF, §8 or shutdown. */
  #isClosing = false;
  #isShuttingDown = false;
  #reason: CloseReason = 'client-closed';

  #idleTimer: NodeJS.Timeout | null = null;
  #slowReaderTimer: NodeJS.Timeout | null = null;
  #unterminatedTimer: NodeJS.Timeout | null = null;
  #lingerTimer: NodeJS.Timeout | null = null;

  #payloads = 0;
  #failedPayloads = 0;
  #bytesIn = 0;
  #bytesOut = 0;
  /** When the latest chunk was read: replies written in the same turn took this long. */
  #readAt = 0;

  constructor(socket: StreamSocket, session: string, context: ConnectionContext) {
    this.#socket = socket;
    this.session = session;
    this.#context = context;
    this.peer = peerOf(socket, context.transport, context.peer);
    this.#protocol = new StreamProtocol(context.options.maxLineBytes);
    this.#work = SimulatedWork.from(context.options);
    // A WebSocket message is already a line: no telnet there.
    this.#telnet = context.options.telnet && context.transport !== 'ws' ? new TelnetFilter() : null;
    this.#telnetSink = this.#telnet === null ? null : this.#newTelnetSink();

    // Shared listeners that find this connection on the socket: closures
    // per connection were a third of what an idle one kept (docs/PERFORMANCE.md).
    (socket as OwnedSocket)[CONNECTION] = this;
    socket.on('data', Connection.#onSocketData);
    socket.on('end', Connection.#onSocketEnd);
    socket.on('drain', Connection.#onSocketDrain);
    socket.on('error', Connection.#onSocketError);
    socket.on('close', Connection.#onSocketClose);

    if (context.options.idleTimeoutMs > 0) {
      this.#idleTimer = setTimeout(Connection.#onIdleTimer, context.options.idleTimeoutMs, this);
    }
    context.logger.debug(
      { session, peer: this.peer, transport: context.transport },
      'session opened',
    );
  }

  /** Bytes written to the socket but not yet taken by the kernel. */
  get bufferedBytes(): number {
    return this.#socket.writableLength;
  }

  /** True while the server has stopped reading from this client. */
  get isPaused(): boolean {
    return this.#isPaused;
  }

  /**
   * Graceful shutdown (README, signals): read nothing more, answer what was already
   * received, then send `503 BUSY` and close.
   */
  shutdown(): void {
    if (this.#isShuttingDown) return;
    // Accepted a moment ago and nothing read yet: its first bytes are most
    // likely in the kernel already (accept and read are separate turns of
    // the event loop). They get that moment to arrive, so that a restart
    // does not answer BUSY to a client that had sent its whole session
    // (docs/TRANSPORTS.md, "Socket activation and inetd mode").
    const firstBytesWait = FIRST_BYTES_MS - (Date.now() - this.#startedAt);
    if (this.#bytesIn === 0 && firstBytesWait > 0 && !this.#isClosing) {
      setTimeout(() => this.shutdown(), firstBytesWait).unref();
      return;
    }
    this.#isShuttingDown = true;
    if (this.#isClosing) return; // QUIT or EOF: it is already finishing.
    this.#stopReading('shutdown');
    this.#queueUnrequested(Replies.BUSY);
    this.#flush();
  }

  /** Cuts the connection off now (shutdown grace period over). */
  destroy(): void {
    if (!this.#isClosing) this.#reason = 'shutdown';
    this.#socket.destroy();
  }

  /** Every callback of this connection runs through here: see fault-boundary.ts. */
  #contain<T = void>(handler: (arg: T) => void): (arg: T) => void {
    return contained(handler, (error) => this.#onFault(error));
  }

  // One function per event for every connection (`this` is the socket, as
  // EventEmitter calls listeners), and timers that carry their connection as
  // an argument: nothing is allocated per connection for them. Each runs
  // behind the fault boundary (fault-boundary.ts), as #contain() does,
  // except 'error' and 'close', which never did.
  static #onSocketData(this: StreamSocket, chunk: Buffer): void {
    const connection = (this as OwnedSocket)[CONNECTION];
    try {
      connection.#socketOnData(chunk);
    } catch (error) {
      connection.#onFault(error);
    }
  }

  static #onSocketEnd(this: StreamSocket): void {
    const connection = (this as OwnedSocket)[CONNECTION];
    try {
      connection.#socketOnEnd();
    } catch (error) {
      connection.#onFault(error);
    }
  }

  static #onSocketDrain(this: StreamSocket): void {
    const connection = (this as OwnedSocket)[CONNECTION];
    try {
      connection.#updateFlow();
    } catch (error) {
      connection.#onFault(error);
    }
  }

  static #onSocketError(this: StreamSocket, error: NodeJS.ErrnoException): void {
    (this as OwnedSocket)[CONNECTION].#socketOnError(error);
  }

  static #onSocketClose(this: StreamSocket): void {
    (this as OwnedSocket)[CONNECTION].#socketOnClose();
  }

  static #onIdleTimer(connection: Connection): void {
    try {
      connection.#idleTimerOnTimeout();
    } catch (error) {
      connection.#onFault(error);
    }
  }

  static #onSlowReaderTimer(connection: Connection): void {
    try {
      connection.#slowReaderTimerOnTimeout();
    } catch (error) {
      connection.#onFault(error);
    }
  }

  static #onUnterminatedTimer(connection: Connection): void {
    try {
      connection.#unterminatedTimerOnTimeout();
    } catch (error) {
      connection.#onFault(error);
    }
  }

  static #onUnterminatedHintTimer(connection: Connection): void {
    try {
      connection.#unterminatedHintOnTimeout();
    } catch (error) {
      connection.#onFault(error);
    }
  }

  #onFault(error: unknown): void {
    if (this.#reason === 'fault') return;
    this.#reason = 'fault';
    this.#isClosing = true;
    this.#context.counters.connectionFault();
    this.#context.logger.error(
      { session: this.session, peer: this.peer, ...faultFields(error) },
      'unexpected error while serving this client; its connection is closed, the server goes on',
    );
    this.#socket.destroy();
  }

  #socketOnData(chunk: Buffer): void {
    if (this.#isClosing) return;
    this.#bytesIn += chunk.length;
    this.#context.counters.received(chunk.length);
    if (this.#context.store.isBackedUp === true) {
      // The store paces its connections (ipc/remote-store.ts): this read
      // waits for its turn as bytes, not as parsed requests (which cost
      // about ten times their size until answered).
      this.#held = this.#held === null ? chunk : Buffer.concat([this.#held, chunk]);
      this.#heldAt = performance.now();
      this.#updateFlow();
      return;
    }
    this.#process(chunk, performance.now());
  }

  #process(chunk: Buffer, readAt: number): void {
    this.#readAt = readAt;
    const linesBefore = this.#protocol.lines;
    if (this.#telnet === null) this.#protocol.push(chunk, this);
    else this.#telnet.push(chunk, this.#telnetSink!);
    if (this.#protocol.lines !== linesBefore) this.#idleTimer?.refresh();
    this.#armUnterminatedTimer();
    if (this.#pendingReplies === 0) this.#flush();
    else this.#holdReadyReplies();
  }

  /**
   * A read that leaves a reply waiting for its commit (a whole session,
   * `HELO`, `DATA`, `QUIT`, in one packet) writes nothing yet: the replies
   * ready ahead of it leave with it when it settles, in one write instead of
   * two. The socket write was the largest cost of such a session
   * (docs/PERFORMANCE.md). They keep the time of their read, for the latency.
   */
  #holdReadyReplies(): void {
    const queue = this.#queue;
    for (let i = 0; i < queue.length; i++) {
      const entry = queue[i]!;
      if (entry instanceof PendingReply) break;
      queue[i] = new PendingReply(this.#readAt, entry);
    }
    this.#updateFlow();
  }

  /** A read held back for the store, if any, is served now. */
  #processHeld(): void {
    const held = this.#held;
    if (held === null) return;
    this.#held = null;
    if (!this.#isClosing) this.#process(held, this.#heldAt);
  }

  /** The client half-closed (FIN): answer every complete line, then close (§2). */
  #socketOnEnd(): void {
    if (this.#isClosing) return;
    this.#processHeld();
    if (this.#isClosing) return;
    if (this.#context.options.unterminatedAfterMs > 0) this.#protocol.endPartialLine(this);
    else if (this.#protocol.partialLineBytes > 0) {
      // docs/PROTOCOL.md §2: without an LF it is not a line (`echo -n HELO | nc` sends no LF).
      this.#context.logger.info(
        { session: this.session, peer: this.peer, droppedBytes: this.#protocol.partialLineBytes },
        'client closed with a partial line (no newline); it is dropped, not answered ' +
          '(--unterminated-after-ms would process it)',
      );
    }
    this.#stopReading('client-closed');
    this.#flush();
  }

  #socketOnError(error: NodeJS.ErrnoException): void {
    // A client that vanishes (reset, broken pipe) ends only its own session.
    if (!this.#isClosing || this.#reason === 'client-closed') this.#reason = 'reset';
    this.#context.logger.debug(
      { session: this.session, peer: this.peer, code: error.code },
      'socket error',
    );
  }

  #socketOnClose(): void {
    const timers = [
      this.#idleTimer,
      this.#slowReaderTimer,
      this.#unterminatedTimer,
      this.#lingerTimer,
    ];
    for (const timer of timers) {
      if (timer) clearTimeout(timer);
    }
    const summary: ConnectionSummary = {
      session: this.session,
      peer: this.peer,
      transport: this.#context.transport,
      durationMs: Date.now() - this.#startedAt,
      commands: this.#protocol.lines,
      payloads: this.#payloads,
      failedPayloads: this.#failedPayloads,
      bytesIn: this.#bytesIn,
      bytesOut: this.#bytesOut,
      reason: this.#reason,
      ...(this.#context.proxy ? { proxy: this.#context.proxy } : {}),
    };
    logSessionClosed(this.#context.logger, summary);
    this.#context.onClose(this, summary);
  }

  #idleTimerOnTimeout(): void {
    // Waiting on a commit, on simulated work or on the client reading is not idleness.
    if (this.#isPaused || this.#pendingReplies > 0) {
      this.#idleTimer?.refresh();
      return;
    }
    this.#stopReading('idle-timeout');
    this.#context.counters.idleTimedOut();
    this.#queueUnrequested(Replies.TOUT);
    this.#flush();
  }

  #slowReaderTimerOnTimeout(): void {
    this.#reason = 'slow-reader';
    this.#context.counters.slowReaderDisconnected();
    this.#context.logger.warn(
      { session: this.session, peer: this.peer, bufferedBytes: this.bufferedBytes },
      'client does not read its replies; disconnecting',
    );
    this.#socket.destroy();
  }

  #unterminatedTimerOnTimeout(): void {
    // docs/PROTOCOL.md §9: silence after a partial line stands in for its LF.
    this.#unterminatedTimer = null;
    if (this.#isClosing) return;
    this.#protocol.endPartialLine(this);
    this.#idleTimer?.refresh();
    this.#flush();
  }

  /** With §9 off: a partial line still waiting after 2 s is most likely a newline-less client. */
  #unterminatedHintOnTimeout(): void {
    this.#unterminatedTimer = null;
    if (this.#isClosing || this.#protocol.partialLineBytes === 0) return;
    if (this.#isPaused || this.#protocol.lines !== this.#linesAtHint) {
      // Not the client's silence (we stopped reading), or a newer partial line: look again later.
      this.#armUnterminatedTimer();
      return;
    }
    this.#hasHintedUnterminated = true;
    this.#context.logger.warn(
      {
        session: this.session,
        peer: this.peer,
        partialLineBytes: this.#protocol.partialLineBytes,
      },
      `a partial line has waited ${UNTERMINATED_HINT_MS / 1000} s for its newline: a client ` +
        'that sends commands without a newline hangs here; start the server with ' +
        '--unterminated-after-ms 100 (npm start does) to end such lines by silence',
    );
  }

  /** docs/PROTOCOL.md §11: what the telnet filter finds, in stream order. */
  #newTelnetSink(): TelnetSink {
    return {
      onData: (bytes, start, end) => {
        const isWhole = start === 0 && end === bytes.length;
        this.#protocol.push(isWhole ? bytes : bytes.subarray(start, end), this);
      },
      onNegotiationReply: (bytes) => {
        // In order behind the replies already owed; not a request, so no latency or reply count.
        if (!this.#isClosing) this.#queue.push(new PendingReply(UNREQUESTED, bytes));
      },
      onInterrupt: () => {
        this.#protocol.discardPartialLine();
      },
    };
  }

  /** ActionSink: one action per line, in request order. */
  onAction(action: SessionAction): void {
    switch (action.type) {
      case 'reply':
        if (action.reply.closes) this.#stopReading('quit');
        if (this.#work === null) this.#queueReply(action.reply);
        else this.#replyAfterWork(action.reply);
        return;
      case 'store':
        if (this.#work === null) this.#storePayload(action.payload);
        else this.#storeAfterWork(action.payload);
        return;
      case 'await-payload':
        return;
      case 'reject':
        // docs/PROTOCOL.md §8: an HTTP request sent to the protocol port.
        this.#context.logger.warn(
          { session: this.session, peer: this.peer },
          'HTTP-like line on the protocol port; closing without reply',
        );
        this.#context.counters.crossProtocolRejected();
        this.#stopReading('cross-protocol');
        return;
    }
  }

  /** `--work-cpu-ms` / `--work-ms`: the reply takes its place in the queue now, its bytes later. */
  #replyAfterWork(reply: ReplyInfo): void {
    if (this.#isWorkDoneNow()) {
      this.#queueReply(reply);
      return;
    }
    const pending = this.#newPendingReply();
    this.#afterWork(() => this.#settle(pending, reply));
  }

  #storeAfterWork(payload: Buffer): void {
    if (this.#isWorkDoneNow()) {
      this.#storePayload(payload);
      return;
    }
    const pending = this.#newPendingReply();
    const name = this.#protocol.session.name;
    this.#afterWork(() => this.#appendPayload(pending, payload, name));
  }

  /** Burns the CPU here unless a thread pool takes it (threads mode); true if nothing is left to wait for. */
  #isWorkDoneNow(): boolean {
    const work = this.#work!;
    if (this.#context.cpuWork && work.cpuMs > 0) return false;
    work.burnCpu();
    return work.delayMs === 0;
  }

  /**
   * `done` after the CPU work on a worker thread (threads mode) and the delay.
   * Threads finish in any order, so each `done` also waits for the one before
   * it: payloads are stored in request order, as in every mode, while the
   * computations still run side by side. A thread that dies with the work
   * rejects it: this client is closed (#onFault).
   */
  #afterWork(done: () => void): void {
    const { delayMs, cpuMs } = this.#work!;
    const delayed =
      delayMs === 0
        ? done
        : (): void => {
            setTimeout(this.#contain(done), delayMs);
          };
    const pool = this.#context.cpuWork;
    if (pool && cpuMs > 0) {
      // Never rejects: the next job waits for this one, whatever became of it.
      this.#workDone = Promise.all([pool.run(cpuMs), this.#workDone]).then(
        this.#contain(delayed),
        (error: unknown) => this.#onFault(error),
      );
    } else delayed();
  }

  /** A reply ready now takes its place behind any that still wait. */
  #queueReply(reply: ReplyInfo): void {
    this.#context.counters.replied(reply.code);
    if (this.#pendingReplies === 0) this.#queue.push(reply.bytes);
    else this.#queue.push(new PendingReply(this.#readAt, reply.bytes));
  }

  #queueUnrequested(reply: ReplyInfo): void {
    this.#context.counters.replied(reply.code);
    this.#queue.push(new PendingReply(UNREQUESTED, reply.bytes));
  }

  #newPendingReply(): PendingReply {
    const pending = new PendingReply(this.#readAt);
    this.#queue.push(pending);
    this.#pendingReplies++;
    return pending;
  }

  #storePayload(payload: Buffer): void {
    this.#appendPayload(this.#newPendingReply(), payload, this.#protocol.session.name);
  }

  #appendPayload(pending: PendingReply, payload: Buffer, name: string | null): void {
    const record = {
      receivedAt: Date.now(),
      session: this.session,
      peer: this.peer,
      name,
      payload,
      clientCert: this.#context.clientCert,
      proxy: this.#context.proxy ?? null,
    };
    appendSafely(this.#context.store, record).then(
      () => this.#payloadStored(pending),
      (error: unknown) => this.#payloadNotStored(pending, error),
    );
  }

  // The store's answer. Behind the fault boundary (fault-boundary.ts): a
  // throw of helo's own here (its logger's) closes this client only.
  #payloadStored(pending: PendingReply): void {
    try {
      this.#payloads++;
      this.#settle(pending, storedReply(this.#context.counters));
    } catch (error) {
      this.#onFault(error);
    }
  }

  #payloadNotStored(pending: PendingReply, storeError: unknown): void {
    try {
      this.#failedPayloads++;
      const { counters, logger } = this.#context;
      this.#settle(
        pending,
        notStoredReply(counters, logger, { session: this.session }, storeError),
      );
    } catch (error) {
      this.#onFault(error);
    }
  }

  #settle(pending: PendingReply, reply: ReplyInfo): void {
    this.#context.counters.replied(reply.code);
    pending.bytes = reply.bytes;
    this.#pendingReplies--;
    // A group commit settles many replies at once: write them together.
    if (!this.#isFlushScheduled) {
      this.#isFlushScheduled = true;
      this.#scheduledFlush ??= this.#contain((): void => {
        this.#isFlushScheduled = false;
        this.#flush();
      });
      queueMicrotask(this.#scheduledFlush);
    }
  }

  /** Made on the first commit that settles a reply: an idle connection has none. */
  #scheduledFlush: (() => void) | null = null;

  /** Writes every reply that is ready, in order, in one write. */
  #flush(): void {
    const queue = this.#queue;
    const counters = this.#context.counters;
    const now = performance.now();
    let ready = 0;
    let bytes = 0;
    /** Replies to requests read in this turn: one latency for all of them. */
    let answeredNow = 0;
    for (; ready < queue.length; ready++) {
      const entry = queue[ready]!;
      if (entry instanceof PendingReply) {
        if (entry.bytes === null) break;
        bytes += entry.bytes.length;
        if (entry.requestedAt !== UNREQUESTED) {
          counters.answered((now - entry.requestedAt) / 1000);
        }
      } else {
        bytes += entry.length;
        answeredNow++;
      }
    }
    if (answeredNow > 0) counters.answered((now - this.#readAt) / 1000, answeredNow);
    if (ready > 0 && !this.#socket.destroyed) {
      let out: Buffer;
      if (ready === 1) {
        out = bytesOf(queue[0]!);
      } else {
        out = Buffer.allocUnsafe(bytes);
        let offset = 0;
        for (let i = 0; i < ready;) {
          // Replies are shared constants (core/replies.ts): a run of the same
          // one, a pipelined burst of HELO, is one fill instead of a copy each
          // (W2, docs/PERFORMANCE.md).
          const piece = bytesOf(queue[i]!);
          let end = i + 1;
          while (end < ready && bytesOf(queue[end]!) === piece) end++;
          const runBytes = piece.length * (end - i);
          if (end - i === 1) piece.copy(out, offset);
          else out.fill(piece, offset, offset + runBytes);
          offset += runBytes;
          i = end;
        }
      }
      this.#bytesOut += bytes;
      this.#context.counters.sent(bytes);
      this.#socket.write(out);
    }
    if (ready === queue.length) this.#queue = [];
    else if (ready > 0) this.#queue = queue.slice(ready);

    if (this.#isClosing && this.#queue.length === 0) {
      // QUIT / TOUT / BUSY / EOF: the last reply is written; FIN follows it.
      if (!this.#socket.destroyed && this.#lingerTimer === null) {
        this.#socket.end();
        // Closing the descriptor while the client still sends would reset the
        // connection, and a reset can destroy replies the client has not read
        // yet: so wait for the client's own close, but not forever.
        this.#lingerTimer = setTimeout(() => this.#socket.destroy(), LINGER_MS);
      }
      return;
    }
    this.#updateFlow();
  }

  #storeOnReady(): void {
    this.#isWaitingForStore = false;
    if (this.#held === null) this.#updateFlow();
    else this.#processHeld();
  }

  /** Pauses reading while replies pile up; resumes when the client catches up. */
  #updateFlow(): void {
    if (this.#isClosing || this.#socket.destroyed) return;
    // Two reasons to stop reading: the client does not read its replies
    // (a slow reader, timed by --slow-reader-timeout, docs/RELIABILITY.md), or replies
    // pile up behind a commit still in progress (the store is slow, not the
    // client: no timer for that).
    const isSlowReader = this.#socket.writableLength > this.#context.options.highWaterMarkBytes;
    // A third: the store has too many appends of this process unanswered (a
    // cluster worker's); it wakes its paused connections a few at a time.
    const isStoreBehind = this.#context.store.isBackedUp === true;
    if (isStoreBehind && !this.#isWaitingForStore) {
      this.#isWaitingForStore = true;
      this.#context.store.whenReady?.(this.#contain(() => this.#storeOnReady()));
    }
    const isBehind = isSlowReader || isStoreBehind || this.#queue.length > MAX_QUEUED_REPLIES;
    if (isBehind && !this.#isPaused) {
      this.#isPaused = true;
      if (isSlowReader) this.#context.counters.slowReaderPaused();
      this.#socket.pause();
    } else if (!isBehind && this.#isPaused) {
      this.#isPaused = false;
      this.#idleTimer?.refresh();
      this.#socket.resume();
    }
    const slowReaderMs = this.#context.options.slowReaderTimeoutMs;
    if (isSlowReader && slowReaderMs > 0) {
      this.#slowReaderTimer ??= setTimeout(Connection.#onSlowReaderTimer, slowReaderMs, this);
    } else if (this.#slowReaderTimer) {
      clearTimeout(this.#slowReaderTimer);
      this.#slowReaderTimer = null;
    }
  }

  #armUnterminatedTimer(): void {
    const afterMs = this.#context.options.unterminatedAfterMs;
    if (afterMs === 0) {
      // Armed once per partial line, not refreshed or cleared per read: cheap on busy connections.
      if (this.#unterminatedTimer !== null || this.#hasHintedUnterminated) return;
      if (this.#protocol.hasPartialLine && !this.#isClosing) {
        this.#linesAtHint = this.#protocol.lines;
        this.#unterminatedTimer = setTimeout(
          Connection.#onUnterminatedHintTimer,
          UNTERMINATED_HINT_MS,
          this,
        );
      }
      return;
    }
    if (this.#protocol.hasPartialLine && !this.#isClosing) {
      if (this.#unterminatedTimer) this.#unterminatedTimer.refresh();
      else {
        this.#unterminatedTimer = setTimeout(Connection.#onUnterminatedTimer, afterMs, this);
      }
    } else if (this.#unterminatedTimer) {
      clearTimeout(this.#unterminatedTimer);
      this.#unterminatedTimer = null;
    }
  }

  /** From now on nothing more is read; the socket ends once the queue is empty. */
  #stopReading(reason: CloseReason): void {
    if (this.#isClosing) return;
    this.#isClosing = true;
    this.#reason = reason;
    for (const timer of [this.#idleTimer, this.#slowReaderTimer, this.#unterminatedTimer]) {
      if (timer) clearTimeout(timer);
    }
    this.#idleTimer = this.#slowReaderTimer = this.#unterminatedTimer = null;
    // Keep the socket flowing: a paused socket would never see the peer's FIN.
    this.#isPaused = false;
    this.#socket.resume();
  }
}

/** The Connection a socket is served by, kept on the socket for the shared listeners. */
const CONNECTION = Symbol('helo.connection');
type OwnedSocket = StreamSocket & { [CONNECTION]: Connection };

/**
 * `127.0.0.1:53122`, `[::1]:53122`; a Unix socket's peer has no address: every local client is "unix".
 * `named`: the client a PROXY header named (docs/PROTOCOL.md §10), which wins.
 */
export function peerOf(socket: StreamSocket, transport: Transport, named?: string | null): string {
  if (named !== undefined && named !== null) return named;
  if (transport === 'unix') return 'unix';
  const { remoteAddress: address, remotePort: port } = socket;
  if (address === undefined) return 'unknown';
  return address.includes(':') ? `[${address}]:${port}` : `${address}:${port}`;
}
