/**
 * SIGKILL cycles (protocol.md §5): a server killed at any moment keeps every
 * payload it acknowledged, and a restart on the same file neither loses nor
 * repeats one. Each cycle starts the real `bin/helo server` on the same
 * SQLite file (which grows from cycle to cycle), has several connections
 * pipeline DATA with unique payloads as fast as they can, kills the whole
 * process group with SIGKILL after a random 300–1500 ms, then reads the file
 * and compares it with what the clients saw acknowledged. The same cycles
 * run against a PostgreSQL store (`store`), read back asynchronously.
 *
 * Shared by `npm run kill-cycles` (bench/kill-cycles.ts, 20 cycles) and by
 * test/server/kill-cycles.test.ts (a few cycles, in `npm test`).
 */
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { openStoreForReading } from '../src/store/open-store.js';
import type { Store, StoredRecord } from '../src/store/store.js';
import { seededRandom } from './seeded-random.js';
import { startChildServer, type ChildServer } from '../src/loadgen/child-server.js';

const HELO_BIN = fileURLToPath(new URL('../../bin/helo', import.meta.url));
const DRCV = '300 DRCV';
const FAIL = '500 FAIL';

export type KillMode = 'event-loop' | 'cluster';

export interface KillCyclesOptions {
  /** The SQLite file every cycle writes to; created by the first server. */
  readonly file: string;
  /**
   * Another store URL instead (`postgres://…`): every cycle's server writes
   * there, and it is read back through openStoreForReading.
   */
  readonly store?: string;
  readonly cycles: number;
  readonly mode: KillMode;
  /** Client connections per cycle. */
  readonly connections: number;
  /** DATA requests each connection keeps in flight. */
  readonly pipeline: number;
  /** The kill comes a random time in [minKillMs, maxKillMs] after the load starts. */
  readonly minKillMs: number;
  readonly maxKillMs: number;
  /** Seeds the kill times, so that a run can be repeated. */
  readonly seed: number;
  /** Told about each cycle as soon as it is checked. */
  readonly onCycle?: (result: CycleResult) => void;
}

export const KILL_CYCLE_DEFAULTS = Object.freeze({
  cycles: 20,
  mode: 'event-loop' as KillMode,
  connections: 4,
  pipeline: 16,
  minKillMs: 300,
  maxKillMs: 1500,
});

export interface CycleResult {
  readonly cycle: number;
  readonly killAfterMs: number;
  /** DATA requests written to the socket. */
  readonly sent: number;
  /** Payloads answered 300 DRCV. */
  readonly acknowledged: number;
  /** Payloads answered 500 FAIL (expected 0: nothing is wrong with the disk). */
  readonly failed: number;
  /** Replies other than 300 DRCV and 500 FAIL, or replies to nothing: must be 0. */
  readonly unexpected: number;
  /** Payloads of this cycle found in the file. */
  readonly stored: number;
  /** Sent, never answered, and stored anyway: allowed (committed, then killed before the reply). */
  readonly storedUnacknowledged: number;
  /** Acknowledged and not in the file, in this cycle or any earlier one: must be 0. */
  readonly lost: number;
  /** Extra copies of payloads in the file: must be 0. */
  readonly duplicated: number;
  /** Size of the database and its -wal after the cycle. */
  readonly dbBytes: number;
}

export interface KillCyclesReport {
  readonly cycles: readonly CycleResult[];
  readonly acknowledged: number;
  readonly stored: number;
  readonly lost: number;
  readonly duplicated: number;
  readonly failed: number;
  readonly unexpected: number;
  readonly dbBytes: number;
  /** No loss, no duplicate, no 500 FAIL or other reply, and every cycle acknowledged something. */
  readonly ok: boolean;
}

export async function runKillCycles(options: KillCyclesOptions): Promise<KillCyclesReport> {
  const random = seededRandom(options.seed);
  // Payloads are unique across runs too, so that a file kept with --file can
  // be used again and still be checked for duplicates.
  const run = `run-${options.seed.toString(36)}-${Date.now().toString(36)}`;
  const acknowledgedSoFar = new Set<string>();
  const results: CycleResult[] = [];
  for (let cycle = 1; cycle <= options.cycles; cycle++) {
    const killAfterMs = Math.round(
      options.minKillMs + random() * (options.maxKillMs - options.minKillMs),
    );
    const outcome = await loadAndKill(options, `${run}-cycle-${cycle}`, killAfterMs);
    for (const payload of outcome.acknowledged) acknowledgedSoFar.add(payload);
    const result = await checkStore(
      storeUrl(options),
      run,
      cycle,
      killAfterMs,
      outcome,
      acknowledgedSoFar,
    );
    results.push(result);
    options.onCycle?.(result);
  }
  const sum = (pick: (result: CycleResult) => number): number =>
    results.reduce((total, result) => total + pick(result), 0);
  const last = results.at(-1);
  const report = {
    cycles: results,
    acknowledged: sum((result) => result.acknowledged),
    stored: sum((result) => result.stored),
    // A loss found in one cycle is found again in every later one.
    lost: last?.lost ?? 0,
    duplicated: last?.duplicated ?? 0,
    failed: sum((result) => result.failed),
    unexpected: sum((result) => result.unexpected),
    dbBytes: last?.dbBytes ?? 0,
  };
  const everyCycleAcknowledged = results.every((result) => result.acknowledged > 0);
  return {
    ...report,
    ok:
      report.lost === 0 &&
      report.duplicated === 0 &&
      report.failed === 0 &&
      report.unexpected === 0 &&
      everyCycleAcknowledged,
  };
}

interface LoadOutcome {
  readonly sent: number;
  readonly acknowledged: readonly string[];
  readonly failed: number;
  readonly unexpected: number;
}

/** One cycle: start the server, load it, kill it; what the clients saw. */
async function loadAndKill(
  options: KillCyclesOptions,
  prefix: string,
  killAfterMs: number,
): Promise<LoadOutcome> {
  const server = await startServer(storeUrl(options), options.mode);
  const senders: Sender[] = [];
  try {
    for (let conn = 0; conn < options.connections; conn++) {
      senders.push(new Sender(server.port, `${prefix}-conn-${conn}`, options.pipeline));
    }
    await new Promise((resolve) => setTimeout(resolve, killAfterMs));
  } finally {
    await server.kill();
  }
  await Promise.all(senders.map((sender) => sender.closed));
  return {
    sent: senders.reduce((total, sender) => total + sender.sent, 0),
    acknowledged: senders.flatMap((sender) => sender.acknowledged),
    failed: senders.reduce((total, sender) => total + sender.failed, 0),
    unexpected: senders.reduce((total, sender) => total + sender.unexpected, 0),
  };
}

function storeUrl(options: KillCyclesOptions): string {
  return options.store ?? `sqlite:${options.file}`;
}

async function startServer(store: string, mode: KillMode): Promise<ChildServer> {
  // detached: the server leads its own process group, so one kill(-pgid)
  // reaches every worker at the same instant, as a machine crash would.
  return startChildServer({
    name: `helo server (${mode})`,
    args: [
      HELO_BIN,
      'server',
      '--port',
      '0',
      '--store',
      store,
      '--mode',
      mode,
      '--log-level',
      'warn',
    ],
    detached: true,
  });
}

/**
 * One connection sending `DATA <prefix>-seq-<n>` with `pipeline` requests in
 * flight, until the server dies. Replies come back in request order
 * (protocol.md §2), so the oldest payload in flight is the one answered.
 */
class Sender {
  readonly acknowledged: string[] = [];
  failed = 0;
  unexpected = 0;
  sent = 0;
  readonly closed: Promise<void>;
  readonly #inFlight: string[] = [];
  #unread = '';

  constructor(port: number, prefix: string, pipeline: number) {
    const socket = connect({ port, host: '127.0.0.1', noDelay: true });
    // The server is killed under this socket: a reset is the expected end.
    socket.on('error', () => {});
    socket.setEncoding('latin1');
    const sendOne = (): void => {
      if (!socket.writable) return;
      const payload = `${prefix}-seq-${this.sent++}`;
      this.#inFlight.push(payload);
      socket.write(`DATA ${payload}\r\n`);
    };
    socket.once('connect', () => {
      for (let i = 0; i < pipeline; i++) sendOne();
    });
    socket.on('data', (text: string) => {
      this.#unread += text;
      let end: number;
      while ((end = this.#unread.indexOf('\r\n')) !== -1) {
        const reply = this.#unread.slice(0, end);
        this.#unread = this.#unread.slice(end + 2);
        const payload = this.#inFlight.shift();
        if (payload !== undefined && reply === DRCV) this.acknowledged.push(payload);
        else if (payload !== undefined && reply === FAIL) this.failed++;
        else {
          // Counted, and the connection given up: past a reply out of step,
          // which payload a later reply belongs to is no longer known.
          this.unexpected++;
          socket.destroy();
          return;
        }
        sendOne();
      }
    });
    this.closed = new Promise((resolve) => socket.once('close', () => resolve()));
  }
}

/** Every record, oldest first: from one snapshot where the store offers it. */
async function* allRecords(store: Store): AsyncGenerator<StoredRecord> {
  if (store.snapshotPages) {
    for await (const page of store.snapshotPages(5000)) yield* page;
    return;
  }
  for (let afterId = 0; ;) {
    const page = await store.read(afterId, 5000);
    if (page.length === 0) return;
    yield* page;
    afterId = (page.at(-1) as StoredRecord).id;
  }
}

/** Compares the store with everything acknowledged so far, after cycle `cycle`. */
async function checkStore(
  url: string,
  run: string,
  cycle: number,
  killAfterMs: number,
  outcome: LoadOutcome,
  acknowledgedSoFar: ReadonlySet<string>,
): Promise<CycleResult> {
  // SQLite: opened read-write, as the next server would, so a WAL left by
  // the kill is recovered exactly as it will be then.
  const store = await openStoreForReading(url);
  const copies = new Map<string, number>();
  let dbBytes: number;
  try {
    for await (const { payload } of allRecords(store)) {
      const text = payload.toString('latin1');
      if (!text.startsWith(run)) continue;
      copies.set(text, (copies.get(text) ?? 0) + 1);
    }
    dbBytes = (await store.summary?.())?.sizeOnDiskBytes ?? 0;
  } finally {
    await store.close();
  }
  const cyclePrefix = `${run}-cycle-${cycle}-`;
  let stored = 0;
  let duplicated = 0;
  for (const [payload, count] of copies) {
    duplicated += count - 1;
    if (payload.startsWith(cyclePrefix)) stored++;
  }
  let lost = 0;
  for (const payload of acknowledgedSoFar) if (!copies.has(payload)) lost++;
  return {
    cycle,
    killAfterMs,
    sent: outcome.sent,
    acknowledged: outcome.acknowledged.length,
    failed: outcome.failed,
    unexpected: outcome.unexpected,
    stored,
    storedUnacknowledged: stored - outcome.acknowledged.filter((p) => copies.has(p)).length,
    lost,
    duplicated,
    dbBytes,
  };
}
