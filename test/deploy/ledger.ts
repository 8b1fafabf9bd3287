/**
 * The clients of the deployment tests and the ledger that checks their
 * payloads against the database.
 *
 * A payload is `LOGICAL#aN`: the client's own payload (`c7-12`) and the
 * attempt that carried it. A client cut off before its reply sends the same
 * logical payload again as the next attempt on a new connection. So the
 * database can tell apart what helo must never do (an acknowledged attempt
 * missing: lost; one attempt stored twice: duplicated; a `500 FAIL` stored)
 * from what no server can avoid: an attempt stored just before the
 * connection was cut, whose reply never arrived, followed by the resent
 * attempt (the logical payload stored twice by the client's own resend,
 * counted as `resentAfterCut`).
 */
import { connect, type Socket } from 'node:net';

/** Why a session ended without the reply it expected. */
export class SessionCut extends Error {}

/** One connection, one request at a time; every reply line is a string. */
export class LineSession {
  readonly #socket: Socket;
  #buffer = '';
  readonly #lines: string[] = [];
  #ended: string | null = null;
  #wake: (() => void) | null = null;
  /** The local port of the connection to HAProxy: what the record's `peer` must show. */
  localPort = 0;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.setEncoding('latin1');
    socket.on('data', (text: string) => {
      this.#buffer += text;
      for (let end = this.#buffer.indexOf('\r\n'); end >= 0; end = this.#buffer.indexOf('\r\n')) {
        this.#lines.push(this.#buffer.slice(0, end));
        this.#buffer = this.#buffer.slice(end + 2);
      }
      this.#wake?.();
    });
    const ended = (why: string) => () => {
      this.#ended ??= why;
      this.#wake?.();
    };
    socket.on('end', ended('closed by the other side'));
    socket.on('error', (error: NodeJS.ErrnoException) => ended(error.code ?? error.message)());
    socket.on('close', ended('closed'));
  }

  static async open(port: number): Promise<LineSession> {
    const socket = connect({ port, host: '127.0.0.1', noDelay: true });
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve).once('error', reject);
    });
    const session = new LineSession(socket);
    session.localPort = socket.localPort!;
    return session;
  }

  /** Writes bytes as they are (several requests at once, for a pipelined session). */
  write(text: string): void {
    if (this.#socket.writable) this.#socket.write(text, 'latin1');
  }

  /** The next reply line; throws SessionCut if the connection ends first or after `timeoutMs`. */
  async reply(timeoutMs = 10_000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    while (this.#lines.length === 0) {
      if (this.#ended !== null) throw new SessionCut(this.#ended);
      const left = deadline - Date.now();
      if (left <= 0) throw new SessionCut('no reply in time');
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.#wake = null;
    }
    return this.#lines.shift()!;
  }

  async request(line: string): Promise<string> {
    this.write(`${line}\r\n`);
    return this.reply();
  }

  close(): void {
    this.#socket.destroy();
  }
}

/** What happened to each attempt: its reply, or `cut` when none came. */
export class Ledger {
  readonly attempts = new Map<string, string>();
  /** Sessions that ended with a connection cut (or a reply other than expected). */
  cuts = 0;

  record(attempt: string, reply: string): void {
    this.attempts.set(attempt, reply);
  }

  count(prefix: string): number {
    let n = 0;
    for (const reply of this.attempts.values()) if (reply.startsWith(prefix)) n += 1;
    return n;
  }

  /** Compares with the payloads found in the database. */
  check(storedPayloads: readonly string[]): LedgerCounts {
    const stored = new Map<string, number>();
    for (const payload of storedPayloads) stored.set(payload, (stored.get(payload) ?? 0) + 1);
    const storedAttemptsOf = new Map<string, number>();
    let unknown = 0;
    for (const payload of stored.keys()) {
      if (!this.attempts.has(payload)) unknown += 1;
      const logical = payload.split('#')[0]!;
      storedAttemptsOf.set(logical, (storedAttemptsOf.get(logical) ?? 0) + 1);
    }
    const counts = {
      attempts: this.attempts.size,
      acknowledged: 0,
      failed: 0,
      cut: 0,
      lost: 0,
      duplicated: 0,
      failedButStored: 0,
      cutButStored: 0,
      resentAfterCut: 0,
      unknown,
    };
    for (const [attempt, reply] of this.attempts) {
      const times = stored.get(attempt) ?? 0;
      if (times > 1) counts.duplicated += 1;
      if (reply.startsWith('300')) {
        counts.acknowledged += 1;
        if (times === 0) counts.lost += 1;
      } else if (reply === 'cut') {
        counts.cut += 1;
        if (times > 0) counts.cutButStored += 1;
      } else {
        counts.failed += 1;
        if (times > 0) counts.failedButStored += 1;
      }
    }
    for (const attemptsStored of storedAttemptsOf.values()) {
      if (attemptsStored > 1) counts.resentAfterCut += 1;
    }
    return counts;
  }
}

export interface LedgerCounts {
  /** Payloads sent (each resend is another attempt). */
  readonly attempts: number;
  /** Attempts answered `300 DRCV`. */
  readonly acknowledged: number;
  /** Attempts answered something else (`500 FAIL`). */
  readonly failed: number;
  /** Attempts whose connection ended before the reply. */
  readonly cut: number;
  /** Acknowledged attempts missing from the database. */
  readonly lost: number;
  /** Attempts stored more than once. */
  readonly duplicated: number;
  /** Attempts answered `500 FAIL` but stored. */
  readonly failedButStored: number;
  /** Attempts cut off before their reply but stored (the server had stored them). */
  readonly cutButStored: number;
  /** Logical payloads stored under two attempts: stored, cut before the ack, resent. */
  readonly resentAfterCut: number;
  /** Stored payloads no client sent. */
  readonly unknown: number;
}

/**
 * A client that keeps its payloads until each is acknowledged: sessions of
 * `perSession` lock-step DATA requests through `port`; a cut connection or
 * a `500 FAIL` makes it wait `backoffMs` and send the same logical payload
 * again as a new attempt on a new connection. Stops after `payloads`
 * acknowledged, or when `running()` turns false between payloads.
 */
export async function persistentClient(options: {
  readonly port: number;
  readonly id: number;
  readonly payloads: number;
  readonly perSession: number;
  readonly ledger: Ledger;
  readonly running: () => boolean;
  readonly backoffMs?: number;
  /** Counts reconnections after a cut or a refusal. */
  readonly onReconnect?: () => void;
}): Promise<number> {
  const { port, id, ledger } = options;
  let next = 0;
  let attempt = 0;
  while (next < options.payloads && options.running()) {
    let session: LineSession | null = null;
    try {
      session = await LineSession.open(port);
      const greeting = await session.request(`HELO c${id}`);
      if (greeting !== '100 OK') throw new SessionCut(`HELO answered ${greeting}`);
      for (let n = 0; n < options.perSession && next < options.payloads; n += 1) {
        if (!options.running()) break;
        const payload = `c${id}-${next}#a${attempt}`;
        attempt += 1;
        ledger.record(payload, 'cut');
        const reply = await session.request(`DATA ${payload}`);
        ledger.record(payload, reply);
        if (!reply.startsWith('300')) throw new SessionCut(`DATA answered ${reply}`);
        next += 1;
      }
      const bye = await session.request('QUIT');
      if (bye !== '200 BYE') throw new SessionCut(`QUIT answered ${bye}`);
    } catch (error) {
      if (!(error instanceof SessionCut) && !isConnectError(error)) throw error;
      ledger.cuts += 1;
      options.onReconnect?.();
      await new Promise((resolve) => setTimeout(resolve, options.backoffMs ?? 20));
    } finally {
      session?.close();
    }
  }
  return next;
}

function isConnectError(error: unknown): boolean {
  return error instanceof Error && 'code' in error && typeof error.code === 'string';
}

/** Sorts replies into a count per distinct outcome, for the report of failures. */
export function tally(outcomes: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const outcome of outcomes) counts[outcome] = (counts[outcome] ?? 0) + 1;
  return counts;
}
