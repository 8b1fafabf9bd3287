/**
 * `helo send [ADDRESS] [PAYLOAD...]`: HELO, one DATA per payload, QUIT.
 *
 * For scripts: it succeeds only when every payload was acknowledged with
 * `300 DRCV`, which means stored (docs/PROTOCOL.md §5), and says which one was
 * not otherwise. Payloads are pipelined, so a long stdin goes at the
 * speed of the server, not of one round trip per line.
 */
import { connect, type HeloClient } from '../client/client.js';
import { ReplyError } from '../errors.js';
import { type CommandHelp, formatHelp, parseFlags, UsageError } from './args.js';
import { CONNECTION_FLAGS, connectOptionsFromFlags, hasScheme } from './address.js';
import { sendUdp } from './udp-session.js';
import { HIGH_WATER_BYTES, MAX_IN_FLIGHT, outcomeOf, readLineBatches } from './stdin-lines.js';

const HELP: CommandHelp = {
  usage: 'helo send [ADDRESS] [flags] [PAYLOAD...]',
  summary: 'Send HELO, one DATA per payload, then QUIT; succeed only if every payload is stored.',
  flags: {
    ...CONNECTION_FLAGS,
    name: { type: 'string', valueName: 'NAME', description: 'send HELO NAME (labels the records)' },
  },
  notes: [
    'Each PAYLOAD argument is one payload. Without PAYLOAD arguments, each stdin line',
    'is one payload, byte for byte (a CR before the LF is removed; an empty line is an',
    'empty payload).',
    '',
    'ADDRESS is tcp://HOST:PORT, tls://HOST:PORT, unix:/PATH, udp://HOST:PORT or',
    'ws://HOST:PORT/ws; as the',
    'first argument it must start with a scheme (a bare first argument is a payload).',
    'It wins over --host and --port. Over UDP each payload is one DATA datagram,',
    'retried if its reply is lost (so it may be stored twice: docs/UDP.md).',
    '',
    'Output: nothing on stdout. When stderr is a terminal, a summary such as',
    "'sent 3 payloads to 127.0.0.1:7777' is printed there.",
    '',
    'Exit status: 0 when every payload was answered 300 DRCV (stored); 1 when one was',
    'not (e.g. 500 FAIL: nothing is sent after it, and the message says which one and',
    'how many were stored), the server cannot be reached, or a reply does not come in',
    'time; 2 for a bad command line.',
  ].join('\n'),
};

/** The first payload not stored, and what the server said instead. */
interface Refusal {
  readonly index: number;
  readonly error: ReplyError;
}

export async function run(argv: string[]): Promise<number> {
  const flags = parseFlags(HELP, argv);
  if (flags.help) {
    process.stdout.write(formatHelp(HELP));
    return 0;
  }
  const positionals = [...flags.positionals];
  const address =
    positionals[0] !== undefined && hasScheme(positionals[0]) ? positionals.shift() : undefined;
  const options = connectOptionsFromFlags(flags.values, address);
  const name = flags.values.name;
  if (typeof name === 'string' && (name.trim() === '' || /[\r\n]/.test(name))) {
    throw new UsageError('--name must be a non-empty name on one line');
  }
  // Checked before connecting: nothing is sent if any payload cannot be.
  positionals.forEach((payload, index) => {
    if (payload.includes('\n')) {
      throw new UsageError(`payload ${index + 1} contains a line feed; send one payload per line`);
    }
  });

  if (options.target.transport === 'udp') {
    if (typeof name === 'string') {
      throw new UsageError('--name labels a session, and UDP has none (docs/PROTOCOL.md §6)');
    }
    const target = { ...options.target, timeoutMs: options.timeoutMs!, waitMs: options.waitMs! };
    try {
      return await sendUdp(
        target,
        positionals.length > 0
          ? oneBatch(positionals.map((text) => Buffer.from(text)))
          : readLineBatches(process.stdin),
      );
    } finally {
      if (positionals.length === 0) process.stdin.destroy();
    }
  }
  const client = await connect(options);
  try {
    await client.helo(typeof name === 'string' ? name : undefined);
    const payloads =
      positionals.length > 0
        ? oneBatch(positionals.map((text) => Buffer.from(text)))
        : readLineBatches(process.stdin);
    const { stored, refusal } = await sendAll(client, payloads);
    if (refusal === null) {
      await client.quit();
      if (process.stderr.isTTY) {
        process.stderr.write(`sent ${plural(stored, 'payload')} to ${client.address}\n`);
      }
      return 0;
    }
    // The refusal is the news; after e.g. 503 BUSY the connection is gone anyway.
    await client.quit().catch(() => undefined);
    throw new ReplyError(
      refusal.error.reply,
      '300 DRCV',
      `payload ${refusal.index} was not stored: server replied ${refusal.error.reply.line} ` +
        `(${plural(stored, 'payload')} stored)`,
    );
  } finally {
    if (positionals.length === 0) process.stdin.destroy();
    await client.close();
  }
}

/**
 * Pipelines one DATA per payload, at most MAX_IN_FLIGHT at a time. After a
 * refused payload nothing new is sent: the server said to retry, and the
 * ones after it would only pile up behind the same problem.
 */
async function sendAll(
  client: HeloClient,
  payloads: AsyncIterable<Buffer[]>,
): Promise<{ stored: number; refusal: Refusal | null }> {
  const outstanding: { index: number; outcome: ReturnType<typeof outcomeOf> }[] = [];
  let stored = 0;
  let refusal: Refusal | null = null;
  const settleOldest = async (): Promise<void> => {
    const { index, outcome } = outstanding.shift()!;
    const result = await outcome;
    if (result.ok) stored++;
    else if (result.error instanceof ReplyError) refusal ??= { index, error: result.error };
    else throw result.error;
  };
  let count = 0;
  sending: for await (const batch of payloads) {
    for (const payload of batch) {
      if (refusal !== null) break sending;
      outstanding.push({ index: ++count, outcome: outcomeOf(client.data(payload)) });
      while (
        outstanding.length >= MAX_IN_FLIGHT ||
        (outstanding.length > 0 && client.bufferedBytes > HIGH_WATER_BYTES)
      ) {
        await settleOldest();
      }
    }
  }
  while (outstanding.length > 0) await settleOldest();
  return { stored, refusal };
}

async function* oneBatch(payloads: Buffer[]): AsyncGenerator<Buffer[]> {
  yield payloads;
}

function plural(count: number, noun: string): string {
  return `${count} ${noun}${count === 1 ? '' : 's'}`;
}
