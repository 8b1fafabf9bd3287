/**
 * `helo store list` and `helo store export` (README, same heading): read the
 * records a server stored, from another process, while that server runs or
 * after it was killed.
 *
 * Records are read a page at a time and each page is written out before the
 * next is read, so a store of any size needs the memory of one page, and a
 * slow consumer (a pipe) slows the reading down instead of filling memory.
 */
import { InvalidOptionError, OutputError } from '../errors.js';
import { DEFAULT_STORE_URL, openStoreForReading, parseStoreUrl } from '../store/open-store.js';
import type { Store, StoredRecord } from '../store/store.js';
import { UsageError, formatHelp, parseFlags, textFlag } from './args.js';
import type { CommandHelp, FlagSpecs } from './args.js';

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

interface Action {
  readonly help: CommandHelp;
  readonly print: (store: Store, url: string) => Promise<WriteOutcome>;
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
        '"clientCert" (TLS client certificate subject, null if none)}.\n' +
        'Nothing else is written to stdout.',
      flags: FLAGS,
      notes: NOTES,
    },
    print: exportRecords,
  },
};

function usage(): string {
  return [
    'usage: helo store <command> [--store URL]',
    '',
    'Read the records a server stored (protocol.md §5).',
    '',
    'commands:',
    '  list    print the records as a table, for people',
    '  export  print one JSON object per record, for programs',
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
  if (!action) throw new UsageError(`unknown command '${name}' (expected list or export)`);
  const flags = parseFlags(action.help, rest);
  if (flags.help) {
    process.stdout.write(formatHelp(action.help));
    return 0;
  }
  const [extra] = flags.positionals;
  if (extra !== undefined) throw new UsageError(`unexpected argument '${extra}'`);
  const url = textFlag(flags.values, 'store', DEFAULT_STORE_URL);
  try {
    parseStoreUrl(url);
  } catch (error) {
    // A bad --store (or HELO_STORE) is a command line that cannot run: exit 2.
    if (error instanceof InvalidOptionError) throw new UsageError(error.message);
    throw error;
  }
  const store = await openStoreForReading(url);
  try {
    // Ending early because the reader went away (`helo store export |
    // head -1`) is how pipelines end, not a failure worth a message.
    await action.print(store, url);
    return 0;
  } finally {
    await store.close();
  }
}

type WriteOutcome = 'written' | 'closed';

/** Every record, oldest first, a page at a time. */
async function* pages(store: Store): AsyncGenerator<StoredRecord[]> {
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
  };
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
