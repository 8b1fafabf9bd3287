/**
 * `helo store list`, `export`, `stats`, `prune` and `backup` (README, same
 * heading; docs/STORES.md): read and look after the records servers stored,
 * from another process, while servers run on the store or after one was
 * killed.
 *
 * Records are read a page at a time and each page is written out before the
 * next is read, so a store of any size needs the memory of one page, and a
 * slow consumer (a pipe) slows the reading down instead of filling memory.
 */
import { InvalidOptionError, OutputError } from '../errors.js';
import { DEFAULT_STORE_URL, openStoreForReading, parseStoreUrl } from '../store/open-store.js';
import { SqliteStore } from '../store/sqlite-store.js';
import type { Store, StoredRecord, StoreSummary } from '../store/store.js';
import { UsageError, formatHelp, parseFlags, textFlag } from './args.js';
import type { CommandHelp, FlagSpecs, ParsedFlags } from './args.js';

/** Records per read: bounds memory, and is large enough to keep queries rare. */
const PAGE_RECORDS = 1000;
/** Payload bytes shown by `list` before the preview is cut. */
const PREVIEW_BYTES = 40;
/** Longest session, peer or name shown by `list`, in characters. */
const TEXT_COLUMN_CHARS = 40;

const FLAGS: FlagSpecs = {
  store: {
    type: 'string',
    valueName: 'URL',
    default: DEFAULT_STORE_URL,
    description: 'the store to read, sqlite:PATH or postgres://…',
  },
};

const NOTES =
  'Works while a server writes to the same store and after a server was killed.\n' +
  'A memory: store lives inside its server process and cannot be read from here.';

const DURATION_UNITS_MS: Readonly<Record<string, number>> = {
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
};

interface Action {
  readonly help: CommandHelp;
  /** Positional arguments taken (their names, for the usage error). */
  readonly positionals?: readonly string[];
  /** Checks the command line before the store is opened (usage errors: exit 2). */
  readonly check?: (values: ParsedFlags['values'], url: string, positionals: string[]) => void;
  readonly print: (
    store: Store,
    url: string,
    values: ParsedFlags['values'],
    positionals: string[],
  ) => Promise<WriteOutcome>;
}

const ACTIONS: Readonly<Record<string, Action>> = {
  list: {
    help: {
      usage: 'helo store list [--store URL]',
      summary:
        'Print the stored records as a table, for people: id, time received, session, peer,\n' +
        'HELO name, payload size in bytes and a preview (printable ASCII; other bytes escaped).',
      flags: FLAGS,
      notes: NOTES,
    },
    print: listRecords,
  },
  export: {
    help: {
      usage: 'helo store export [--store URL]',
      summary:
        'Print every stored record as one JSON object per line, in id order, for programs:\n' +
        '{"id","receivedAt" (ISO 8601),"session","peer","name" (null if none),"payloadBase64",\n' +
        '"clientCert" (TLS client certificate subject, null if none),\n' +
        '"proxy" (the connection\'s real source under the PROXY protocol, null if none)}.\n' +
        'Nothing else is written to stdout. A PostgreSQL store is read as one snapshot.',
      flags: FLAGS,
      notes: NOTES,
    },
    print: exportRecords,
  },
  stats: {
    help: {
      usage: 'helo store stats [--store URL] [--json]',
      summary:
        'Print how many records the store holds, their payload bytes, the oldest and newest\n' +
        'time received, and the size on disk (SQLite: the file and its -wal; PostgreSQL:\n' +
        "pg_total_relation_size('records')).",
      flags: {
        ...FLAGS,
        json: { type: 'boolean', description: 'one JSON object, for programs' },
      },
      notes: NOTES,
    },
    print: printStats,
  },
  prune: {
    help: {
      usage: 'helo store prune [--store URL] (--before ISO-DATE | --older-than DURATION)',
      summary:
        'Delete the records received before a moment, print how many, and free the space.\n' +
        'Safe while servers write to the store: it deletes in short transactions.',
      flags: {
        ...FLAGS,
        before: {
          type: 'string',
          valueName: 'ISO-DATE',
          description: 'delete records received before this moment, e.g. 2026-01-31T00:00:00Z',
        },
        'older-than': {
          type: 'string',
          valueName: 'DURATION',
          description: 'delete records older than this: a number and s, m, h, d or w (30d, 12h)',
        },
      },
      notes: NOTES,
    },
    check: (values) => {
      pruneCut(values);
    },
    print: pruneRecords,
  },
  backup: {
    help: {
      usage: 'helo store backup [--store sqlite:PATH] DEST',
      summary:
        'Write a consistent copy of a live SQLite store to DEST (a new file, mode 0600),\n' +
        'while servers keep writing. For a PostgreSQL store, use pg_dump.',
      flags: FLAGS,
    },
    positionals: ['DEST'],
    check: (_values, url, positionals) => {
      const kind = parseStoreUrl(url).kind;
      if (kind === 'postgres') {
        throw new UsageError('a PostgreSQL store is backed up with pg_dump, not helo store backup');
      }
      if (kind === 'memory') throw new UsageError('a memory: store has nothing to back up');
      if (positionals.length === 0) throw new UsageError('missing DEST, the file to write');
    },
    print: backupStore,
  },
};

function usage(): string {
  return [
    'usage: helo store <command> [--store URL]',
    '',
    'Read and look after the records servers stored (docs/PROTOCOL.md §5, docs/STORES.md).',
    '',
    'commands:',
    '  list    print the records as a table, for people',
    '  export  print one JSON object per record, for programs',
    '  stats   how many records, how many bytes, which dates, the size on disk',
    '  prune   delete the records received before a moment',
    '  backup  a consistent copy of a live SQLite store',
    '',
    "Run 'helo store <command> --help' for its flags.",
    '',
  ].join('\n');
}

export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const action = ACTIONS[name];
  if (!action || !Object.hasOwn(ACTIONS, name)) {
    throw new UsageError(`unknown command '${name}' (expected ${Object.keys(ACTIONS).join(', ')})`);
  }
  const flags = parseFlags(action.help, rest);
  if (flags.help) {
    process.stdout.write(formatHelp(action.help));
    return 0;
  }
  const positionals = flags.positionals;
  const extra = positionals[action.positionals?.length ?? 0];
  if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}'`);
  const url = textFlag(flags.values, 'store', DEFAULT_STORE_URL);
  try {
    parseStoreUrl(url);
  } catch (error) {
    // A bad --store (or HELO_STORE) is a command line that cannot run: exit 2.
    if (error instanceof InvalidOptionError) throw new UsageError(error.message);
    throw error;
  }
  action.check?.(flags.values, url, positionals);
  const store = await openStoreForReading(url);
  try {
    // Ending early because the reader went away (`helo store export |
    // head -1`) is how pipelines end, not a failure worth a message.
    await action.print(store, url, flags.values, positionals);
    return 0;
  } finally {
    await store.close();
  }
}

type WriteOutcome = 'written' | 'closed';

/**
 * Every record, oldest first, a page at a time: from one snapshot where the
 * store has them (PostgreSQL), else by id (SQLite commits in id order, so
 * paging by id never skips a record there).
 */
async function* pages(store: Store): AsyncGenerator<StoredRecord[]> {
  if (store.snapshotPages) {
    yield* store.snapshotPages(PAGE_RECORDS);
    return;
  }
  let afterId = 0;
  for (;;) {
    const page = await store.read(afterId, PAGE_RECORDS);
    if (page.length === 0) return;
    yield page;
    const last = page[page.length - 1] as StoredRecord;
    afterId = last.id;
    if (page.length < PAGE_RECORDS) return;
  }
}

async function exportRecords(store: Store): Promise<WriteOutcome> {
  for await (const page of pages(store)) {
    const text = page.map((record) => JSON.stringify(exportedRecord(record)) + '\n').join('');
    if ((await writeOut(text)) === 'closed') return 'closed';
  }
  return 'written';
}

/** The README's `helo store export`: exactly these fields, in this order. */
function exportedRecord(record: StoredRecord): Record<string, unknown> {
  return {
    id: record.id,
    receivedAt: isoTime(record.receivedAt),
    session: record.session,
    peer: record.peer,
    name: record.name,
    payloadBase64: record.payload.toString('base64'),
    clientCert: record.clientCert,
    proxy: record.proxy,
  };
}

async function printStats(
  store: Store,
  url: string,
  values: ParsedFlags['values'],
): Promise<WriteOutcome> {
  const summary = await requireSummary(store, url);
  const time = (ms: number | null) => (ms === null ? null : isoTime(ms));
  if (values.json === true) {
    return writeOut(
      JSON.stringify({
        records: summary.records,
        payloadBytes: summary.payloadBytes,
        oldestReceivedAt: time(summary.oldestAt),
        newestReceivedAt: time(summary.newestAt),
        sizeOnDiskBytes: summary.sizeOnDiskBytes,
      }) + '\n',
    );
  }
  const lines: [string, string][] = [
    ['store', url],
    ['records', String(summary.records)],
    ['payload bytes', String(summary.payloadBytes)],
    ['oldest', time(summary.oldestAt) ?? '-'],
    ['newest', time(summary.newestAt) ?? '-'],
    ['size on disk', `${summary.sizeOnDiskBytes} bytes`],
  ];
  return writeOut(lines.map(([label, value]) => `${label.padEnd(14)}${value}\n`).join(''));
}

async function requireSummary(store: Store, url: string): Promise<StoreSummary> {
  if (!store.summary) throw new UsageError(`${url} cannot tell its size`);
  return store.summary();
}

/**
 * The moment before which `prune` deletes, in ms. Exactly one of --before
 * and --older-than; a moment in the future is refused, because records
 * being acknowledged right now would fall before it.
 */
function pruneCut(values: ParsedFlags['values'], now = Date.now()): number {
  const before = values.before;
  const olderThan = values['older-than'];
  if ((before === undefined) === (olderThan === undefined)) {
    throw new UsageError('give exactly one of --before ISO-DATE and --older-than DURATION');
  }
  let cut: number;
  if (typeof before === 'string') {
    cut = /^\d{4}-\d{2}-\d{2}(T[\d:.]+(Z|[+-]\d{2}:?\d{2})?)?$/.test(before)
      ? Date.parse(before)
      : Number.NaN;
    if (Number.isNaN(cut)) {
      throw new UsageError(
        `--before must be an ISO 8601 date, e.g. 2026-01-31 or 2026-01-31T12:00:00Z, got '${before}'`,
      );
    }
  } else {
    const match = /^(\d{1,9})([smhdw])$/.exec(String(olderThan));
    if (match === null) {
      throw new UsageError(
        `--older-than must be a number and s, m, h, d or w (30d, 12h), got '${String(olderThan)}'`,
      );
    }
    cut = now - Number(match[1]) * (DURATION_UNITS_MS[match[2] as string] as number);
  }
  if (cut > now) {
    throw new UsageError(
      `--before ${isoTime(cut)} is in the future; records being stored now would be deleted`,
    );
  }
  return cut;
}

async function pruneRecords(
  store: Store,
  url: string,
  values: ParsedFlags['values'],
): Promise<WriteOutcome> {
  const cut = pruneCut(values);
  if (!store.prune) throw new UsageError(`${url} cannot be pruned`);
  const result = await store.prune(cut);
  const records = `${result.deleted} record${result.deleted === 1 ? '' : 's'}`;
  return writeOut(`deleted ${records} received before ${isoTime(cut)}\n${result.freed}\n`);
}

async function backupStore(
  store: Store,
  url: string,
  _values: ParsedFlags['values'],
  positionals: string[],
): Promise<WriteOutcome> {
  const destination = positionals[0] as string;
  if (!(store instanceof SqliteStore)) throw new UsageError(`${url} is not a SQLite store`);
  await store.backupTo(destination);
  return writeOut(`backed up ${url} to ${destination}\n`);
}

const HEADINGS = ['id', 'received', 'session', 'peer', 'name', 'bytes', 'payload'] as const;
/** Numbers read best right-aligned. */
const RIGHT_ALIGNED = new Set<number>([0, 5]);

async function listRecords(store: Store, url: string): Promise<WriteOutcome> {
  // Widths come from each page as it is read (the whole store is never in
  // memory) and only ever grow, so a later page with a longer value shifts
  // its own rows, never the heading's.
  const widths: number[] = HEADINGS.map((heading) => heading.length);
  let count = 0;
  let headingWritten = false;
  for await (const page of pages(store)) {
    const rows = page.map(listRow);
    for (const row of rows) {
      row.forEach((cell, index) => {
        widths[index] = Math.max(widths[index] ?? 0, cell.length);
      });
    }
    let text = headingWritten ? '' : formatRow(HEADINGS, widths);
    headingWritten = true;
    text += rows.map((row) => formatRow(row, widths)).join('');
    count += page.length;
    if ((await writeOut(text)) === 'closed') return 'closed';
  }
  const summary = `${count} record${count === 1 ? '' : 's'} in ${url}\n`;
  return writeOut(headingWritten ? `\n${summary}` : summary);
}

function listRow(record: StoredRecord): string[] {
  return [
    String(record.id),
    isoTime(record.receivedAt),
    safeText(record.session),
    safeText(record.peer),
    record.name === null ? '-' : safeText(record.name),
    String(record.payload.length),
    preview(record.payload),
  ];
}

function formatRow(cells: readonly string[], widths: readonly number[]): string {
  const last = cells.length - 1;
  const padded = cells.map((cell, index) => {
    if (index === last) return cell;
    const width = widths[index] ?? 0;
    return RIGHT_ALIGNED.has(index) ? cell.padStart(width) : cell.padEnd(width);
  });
  return padded.join('  ') + '\n';
}

/**
 * The payload is bytes (docs/PROTOCOL.md §3), possibly hostile to a terminal:
 * only printable ASCII is shown as is; quotes make spaces at the ends and an
 * empty payload visible.
 */
function preview(payload: Buffer): string {
  let shown = '"';
  for (const byte of payload.subarray(0, PREVIEW_BYTES)) {
    if (byte === 0x22) shown += '\\"';
    else if (byte === 0x5c) shown += '\\\\';
    else if (byte >= 0x20 && byte <= 0x7e) shown += String.fromCharCode(byte);
    else if (byte === 0x09) shown += '\\t';
    else if (byte === 0x0d) shown += '\\r';
    else if (byte === 0x00) shown += '\\0';
    else shown += `\\x${byte.toString(16).padStart(2, '0')}`;
  }
  shown += '"';
  return payload.length > PREVIEW_BYTES ? `${shown}...` : shown;
}

// eslint-disable-next-line no-control-regex
const UNSAFE_TEXT = /[\\\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * Session, peer and name are text, and the name comes from the client's
 * HELO: letters of any script are shown, but control characters (which
 * could drive the terminal) and bidirectional overrides (which could reorder
 * what is shown) are escaped, and long values are cut.
 */
function safeText(text: string): string {
  const escaped = text.replace(UNSAFE_TEXT, (char) =>
    char === '\\' ? '\\\\' : `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`,
  );
  const chars = [...escaped];
  return chars.length > TEXT_COLUMN_CHARS
    ? `${chars.slice(0, TEXT_COLUMN_CHARS - 3).join('')}...`
    : escaped;
}

function isoTime(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? String(ms) : date.toISOString();
}

let stdoutGuarded = false;

/**
 * Writes to stdout and waits until the text has been handed to the OS, so
 * that at most one page is ever buffered. Resolves 'closed' when the reader
 * has gone (EPIPE); other write errors (a full disk) are thrown.
 */
function writeOut(text: string): Promise<WriteOutcome> {
  if (!stdoutGuarded) {
    // The failed write's callback reports the error; without a listener the
    // same error, emitted as an event, would crash the process.
    process.stdout.on('error', () => {});
    stdoutGuarded = true;
  }
  return new Promise((resolve, reject) => {
    process.stdout.write(text, (error) => {
      if (!error) resolve('written');
      else if (isClosedPipe(error)) resolve('closed');
      else reject(new OutputError(`cannot write to stdout: ${error.message}`, { cause: error }));
    });
  });
}

function isClosedPipe(error: Error): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === 'EPIPE' || code === 'ERR_STREAM_DESTROYED' || code === 'ECONNRESET';
}
