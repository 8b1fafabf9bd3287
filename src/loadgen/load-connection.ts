/**
 * One connection slot of a load: connects, sends its plan's exchanges with
 * up to `maxInFlight` in flight, judges and times every reply, and
 * reconnects when the connection fails or (for a session plan) when the
 * session is over.
 *
 * The hot path is kept lean on purpose, since the load generator must not
 * be what limits the measurement: a read goes into one buffer shared by
 * the thread (no allocation per read), lines are found by LineScanner
 * (offsets, no strings), the clock is read once per read, and everything
 * a read allows to be sent goes out in one write (a slice of the
 * precomputed request bytes).
 */
import net from 'node:net';
import type { RecordableHistogram } from 'node:perf_hooks';
import type { ExchangeSequence } from './exchange-sequence.js';
import { toNanoseconds } from './latency.js';
import { LineScanner, type LineSink } from './line-scanner.js';
import { ErrorKinds, type LoadCounts } from './load-counts.js';
import type { RateSchedule } from './rate-schedule.js';
import { lineEquals, replyCodeOf } from './reply-expectation.js';

/** What a connection shares with the other connections of its thread. */
export interface LoadContext {
  readonly host: string;
  readonly port: number;
  readonly sequence: ExchangeSequence;
  readonly isSession: boolean;
  readonly maxInFlight: number;
  readonly timeoutMs: number;
  /** The one buffer every socket of the thread reads into. */
  readonly readBuffer: Buffer;
  readonly warmup: LoadCounts;
  readonly measured: LoadCounts;
  readonly requestLatency: RecordableHistogram;
  readonly sessionLatency: RecordableHistogram;
  /** True once the warm-up is over. */
  readonly isMeasuring: boolean;
  /** True when no new request or session may start (stopped, or the budget is spent). */
  readonly isWindingDown: boolean;
  /** Grants up to `units` requests (or sessions) from the budget; fewer when it runs out. */
  take(units: number): number;
  /** performance.now() of the last measured reply (or session end). */
  lastMeasuredAt: number;
  /** performance.now() of the last reply of either phase. */
  lastReplyAt: number;
  /** The slot is done for good. */
  onRetired(): void;
}

type State =
  /** Not started, or waiting to reconnect. */
  | 'waiting'
  | 'connecting'
  | 'open'
  /** The session is complete; waiting for the connection to close. */
  | 'closing'
  /** An error was counted; the socket is being destroyed. */
  | 'failed'
  | 'retired';

/** After an error, the slot waits this long before it reconnects: a refused port must not spin. */
const RECONNECT_DELAY_MS = 100;

export class LoadConnection implements LineSink {
  readonly #context: LoadContext;
  readonly #sequence: ExchangeSequence;
  /** Open loop only: when each unit (request, or session) of this slot is due. */
  readonly #schedule: RateSchedule | null;
  readonly #scanner = new LineScanner();

  #state: State = 'waiting';
  #socket: net.Socket | null = null;
  #timer: NodeJS.Timeout | null = null;
  /** The clock, read once per read. */
  #now = 0;
  /** When the current connection attempt began; when a wait for replies began. */
  #connectingSince = 0;
  #waitingSince = 0;
  #closingSince = 0;
  #hasServerEnded = false;

  /** The next exchange to send and the next one to be answered, counted from the connection's start. */
  #nextIndex = 0;
  #replyIndex = 0;
  /** Exchanges from this index on are counted in the measured phase. */
  #measuredFrom = Infinity;
  /** When each request in flight was sent (or, open loop, was due), oldest at #head. */
  readonly #sentAt: Float64Array;
  #head = 0;
  #inFlight = 0;
  /** Units (requests, or sessions) taken from the schedule so far, across reconnects. */
  #unitsIssued = 0;
  #sessionStartedAt = 0;

  /** The reply being read: its line so far, its code, whether it matches. */
  #lineInReply = 0;
  #replyCode = 0;
  #replyMatches = true;

  constructor(context: LoadContext, schedule: RateSchedule | null) {
    this.#context = context;
    this.#sequence = context.sequence;
    this.#schedule = schedule;
    this.#sentAt = new Float64Array(context.maxInFlight);
  }

  start(): void {
    this.#next(performance.now());
  }

  /** The warm-up is over: whatever is sent from now on is measured. */
  beginMeasuring(): void {
    // A session belongs to the phase it started in; a steady request to the phase it is sent in.
    if (!this.#context.isSession) this.#measuredFrom = this.#nextIndex;
  }

  /** Sends what the plan, the pipeline depth, the budget and the schedule allow; one write. */
  fill(now: number): void {
    if (this.#state !== 'open') return;
    const context = this.#context;
    const sequence = this.#sequence;
    const room = context.maxInFlight - this.#inFlight;
    if (room <= 0) return;
    const first = this.#nextIndex;
    let count: number;
    if (context.isSession) {
      // The whole session was granted when it started.
      count = Math.min(room, sequence.length - first);
    } else {
      // Nothing new once the load winds down, not even a setup exchange.
      if (context.isWindingDown) return;
      const setup = first < sequence.setupLength ? Math.min(room, sequence.setupLength - first) : 0;
      let counted = room - setup;
      if (this.#schedule !== null && counted > 0) {
        counted = Math.min(counted, this.#schedule.dueBy(now) - this.#unitsIssued);
      }
      count = setup + (counted > 0 ? context.take(counted) : 0);
    }
    if (count <= 0) return;

    const countedFrom = Math.max(first, sequence.setupLength);
    const countedSent = first + count - countedFrom;
    if (countedSent > 0) {
      (this.#isMeasured(countedFrom) ? context.measured : context.warmup).requests += countedSent;
    }
    const capacity = this.#sentAt.length;
    let slot = (this.#head + this.#inFlight) % capacity;
    for (let index = first; index < first + count; index++) {
      // Open loop: a counted request's latency runs from when it was due, not from when it went.
      this.#sentAt[slot] =
        this.#schedule !== null && !context.isSession && index >= sequence.setupLength
          ? this.#schedule.timeOf(this.#unitsIssued++)
          : now;
      slot = slot + 1 === capacity ? 0 : slot + 1;
    }
    if (this.#inFlight === 0) this.#waitingSince = now;
    this.#inFlight += count;
    this.#nextIndex = first + count;
    this.#socket!.write(sequence.requestBytes(first, count));
  }

  /** Called by the thread every so often: gives up on a connection that stopped answering. */
  checkTimeout(now: number): void {
    const timeoutMs = this.#context.timeoutMs;
    if (timeoutMs <= 0) return;
    if (this.#state === 'connecting' && now - this.#connectingSince > timeoutMs) {
      this.#fail(ErrorKinds.timeout);
    } else if (
      this.#state === 'open' &&
      this.#inFlight > 0 &&
      now - this.#waitingSince > timeoutMs
    ) {
      this.#fail(ErrorKinds.timeout);
    } else if (this.#state === 'closing' && now - this.#closingSince > timeoutMs) {
      this.#socket?.destroy();
    }
  }

  /**
   * Retires the slot if it has nothing left to do: the load is winding down
   * and no reply (nor, for a session plan, any part of a session) is due.
   */
  retireIfIdle(): void {
    if (!this.#context.isWindingDown) return;
    switch (this.#state) {
      case 'waiting':
        this.#retire();
        break;
      case 'connecting':
        // A session was granted and will run; a steady connection has nothing left to send.
        if (!this.#context.isSession) this.#retire();
        break;
      case 'open':
        if (!this.#context.isSession && this.#inFlight === 0) this.#retire();
        break;
      default:
        break;
    }
  }

  // LineSink: one reply line.
  onLine(buffer: Buffer, start: number, end: number, isTruncated: boolean): void {
    if (this.#state !== 'open') return;
    const context = this.#context;
    if (this.#inFlight === 0) {
      // Nothing was asked: a server speaking first (503 BUSY, 408 TOUT), or an extra line.
      (context.isMeasuring ? context.measured : context.warmup).unexpected++;
      return;
    }
    const index = this.#replyIndex;
    const expectation = this.#sequence.expectation(index);
    if (this.#lineInReply === 0) {
      this.#replyCode = replyCodeOf(buffer, start, end);
      this.#replyMatches = true;
    }
    const expectedLines = expectation.lines;
    if (expectedLines !== null && this.#replyMatches) {
      this.#replyMatches =
        !isTruncated && lineEquals(expectedLines[this.#lineInReply]!, buffer, start, end);
    }
    if (++this.#lineInReply < expectation.lineCount) return;

    this.#lineInReply = 0;
    this.#replyIndex = index + 1;
    this.#inFlight--;
    const sentAt = this.#sentAt[this.#head]!;
    this.#head = this.#head + 1 === this.#sentAt.length ? 0 : this.#head + 1;
    const now = this.#now;
    this.#waitingSince = now;
    context.lastReplyAt = now;
    if (index < this.#sequence.setupLength) {
      if (!this.#replyMatches) this.#fail(ErrorKinds.setup);
      return;
    }
    const isMeasured = this.#isMeasured(index);
    const counts = isMeasured ? context.measured : context.warmup;
    counts.replies++;
    counts.byCode[this.#replyCode]!++;
    if (!this.#replyMatches) counts.unexpected++;
    if (isMeasured) {
      context.requestLatency.record(toNanoseconds(now - sentAt));
      context.lastMeasuredAt = now;
    }
  }

  /**
   * A steady request counts in the phase it was sent in; a whole session in
   * the phase it started in (its #measuredFrom is then 0 or Infinity).
   */
  #isMeasured(index: number): boolean {
    return index >= this.#measuredFrom;
  }

  /** Starts the next session, or (steady) the next connection, when it is due. */
  #next(now: number): void {
    const context = this.#context;
    if (context.isWindingDown) {
      this.#retire();
      return;
    }
    if (context.isSession) {
      // Open loop: wait for the session's time; it may already have passed.
      if (this.#schedule !== null) {
        const delay = this.#schedule.delayUntil(this.#unitsIssued, now);
        if (delay > 0) {
          this.#wait(delay);
          return;
        }
      }
      if (context.take(1) === 0) {
        this.#retire();
        return;
      }
      this.#sessionStartedAt =
        this.#schedule !== null ? this.#schedule.timeOf(this.#unitsIssued) : now;
      this.#unitsIssued++;
    }
    this.#connect(now);
  }

  #wait(delayMs: number): void {
    this.#state = 'waiting';
    this.#timer = setTimeout(() => {
      this.#timer = null;
      this.#next(performance.now());
    }, delayMs);
  }

  #connect(now: number): void {
    const context = this.#context;
    this.#state = 'connecting';
    this.#connectingSince = now;
    this.#nextIndex = 0;
    this.#replyIndex = 0;
    this.#head = 0;
    this.#inFlight = 0;
    this.#lineInReply = 0;
    this.#hasServerEnded = false;
    this.#measuredFrom = context.isMeasuring ? 0 : Infinity;
    this.#scanner.reset();
    const socket = net.connect({
      host: context.host,
      port: context.port,
      noDelay: true,
      onread: {
        buffer: context.readBuffer,
        // Returning true keeps the socket reading (false would pause it).
        callback: (bytes: number, buffer: Uint8Array): boolean => {
          this.#onRead(buffer as Buffer, bytes);
          return true;
        },
      },
    });
    this.#socket = socket;
    socket.once('connect', () => {
      if (this.#state !== 'connecting') return;
      this.#state = 'open';
      const at = performance.now();
      this.fill(at);
      this.retireIfIdle();
    });
    socket.on('end', () => this.#onServerEnd());
    socket.on('error', (error: NodeJS.ErrnoException) => this.#fail(error.code ?? 'error'));
    socket.once('close', () => this.#onClose(socket));
  }

  #onRead(buffer: Buffer, bytes: number): void {
    if (this.#state !== 'open') return;
    const now = performance.now();
    this.#now = now;
    this.#scanner.push(buffer.subarray(0, bytes), this);
    if (this.#state !== 'open') return;
    if (this.#context.isSession && this.#replyIndex === this.#sequence.length) {
      this.#completeSession(now);
      return;
    }
    this.fill(now);
    this.retireIfIdle();
  }

  #completeSession(now: number): void {
    const context = this.#context;
    if (this.#measuredFrom === 0) {
      context.measured.sessions++;
      context.sessionLatency.record(toNanoseconds(now - this.#sessionStartedAt));
      context.lastMeasuredAt = now;
    } else {
      context.warmup.sessions++;
    }
    this.#state = 'closing';
    this.#closingSince = now;
    // Let the server close first when it does (after QUIT), so that the
    // TIME_WAIT state stays on its side and not on our ephemeral ports. Its
    // FIN is often in the same read; it is seen after this callback returns.
    const socket = this.#socket;
    setImmediate(() => {
      if (this.#socket === socket && !this.#hasServerEnded) socket?.end();
    });
  }

  #onServerEnd(): void {
    this.#hasServerEnded = true;
    if (this.#state === 'open') this.#fail(ErrorKinds.closed);
    // The session is over and the server closed: nothing left to wait for.
    else if (this.#state === 'closing') this.#socket?.destroy();
  }

  /** Counts an error, and what it left unanswered, then drops the connection. */
  #fail(kind: string): void {
    if (this.#state !== 'open' && this.#state !== 'connecting') return;
    const context = this.#context;
    (context.isMeasuring ? context.measured : context.warmup).addError(kind);
    const setupLength = this.#sequence.setupLength;
    for (let index = this.#replyIndex; index < this.#nextIndex; index++) {
      if (index < setupLength) continue;
      (this.#isMeasured(index) ? context.measured : context.warmup).unanswered++;
    }
    this.#state = 'failed';
    this.#socket?.destroy();
  }

  #onClose(socket: net.Socket): void {
    if (this.#socket !== socket) return;
    this.#socket = null;
    if (this.#state === 'retired') return;
    if (this.#state === 'open' || this.#state === 'connecting') {
      // Closed without an 'end' or 'error' first (e.g. destroyed by a timeout check).
      this.#fail(ErrorKinds.closed);
    }
    const wasFailure = this.#state === 'failed';
    this.#state = 'waiting';
    if (wasFailure && !this.#context.isWindingDown) this.#wait(RECONNECT_DELAY_MS);
    else this.#next(performance.now());
  }

  #retire(): void {
    if (this.#timer !== null) clearTimeout(this.#timer);
    this.#timer = null;
    const wasRetired = this.#state === 'retired';
    this.#state = 'retired';
    this.#socket?.destroy();
    this.#socket = null;
    if (!wasRetired) this.#context.onRetired();
  }
}
