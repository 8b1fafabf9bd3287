/**
 * `helo client [ADDRESS]`: talk to a server (README, `helo client`).
 *
 * At a terminal it reads like the lab transcript: a prompt, each reply with
 * its round-trip time, `Input data to send:` after a bare DATA, and QUIT on
 * Ctrl-D or Ctrl-C. From a pipe it is a filter for scripts and graders: one
 * command per line in, one reply line out as each arrives, requests
 * pipelined. Thin over the client library; the address and stdin helpers
 * it shares with `helo send` live in address.ts and stdin-lines.ts.
 */
import { once } from 'node:events';
import { clearLine, cursorTo } from 'node:readline';
import { createInterface } from 'node:readline/promises';
import type { Readable, Writable } from 'node:stream';
import { connect, type HeloClient, type LineEnding, type Reply } from '../client/client.js';
import { ClosedError, type HeloError, InvalidArgumentError, OutputError } from '../errors.js';
import { CONNECTION_FLAGS, connectOptionsFromFlags } from './address.js';
import { runUdpInteractive, runUdpPiped } from './udp-session.js';
import { type CommandHelp, formatHelp, parseFlags, UsageError } from './args.js';
import {
  HIGH_WATER_BYTES,
  MAX_IN_FLIGHT,
  type Outcome,
  outcomeOf,
  readLineBatches,
} from './stdin-lines.js';

/** The flags for the exercise's own servers (docs/GRADING.md). */
const CLASSROOM_FLAGS = {
  lockstep: {
    type: 'boolean',
    description:
      'send one line, wait for its reply, then the next (servers that read one command per recv())',
  },
  eol: {
    type: 'string',
    valueName: 'crlf|lf|none',
    default: 'crlf',
    description: 'the line terminator sent; none implies --lockstep and --inline-data',
  },
  'inline-data': {
    type: 'boolean',
    description: 'send a bare DATA and its payload line as one DATA <payload> request',
  },
} as const;

const HELP: CommandHelp = {
  usage: 'helo client [ADDRESS] [flags]',
  summary:
    'Talk to a helo server: interactively at a terminal, or one command per line from a pipe.',
  flags: { ...CONNECTION_FLAGS, ...CLASSROOM_FLAGS },
  notes: [
    'ADDRESS is tcp://HOST:PORT or HOST:PORT (brackets around an IPv6 address),',
    'tls://HOST:PORT (see the --tls-* flags), unix:/PATH, udp://HOST:PORT or',
    'ws://HOST:PORT/ws; it wins over --host and --port. Over UDP',
    'each line is one datagram (a bare DATA travels with its payload line) and a',
    'request whose reply is lost is sent again, within --timeout.',
    '',
    'At a terminal: type HELO, DATA, QUIT or anything else; each reply is shown with',
    'its round-trip time. After a bare DATA you are asked for the payload line. Ctrl-D',
    'or Ctrl-C sends QUIT and exits 0 (at the payload prompt, it leaves without sending',
    'the payload, and nothing is stored).',
    '',
    'From a pipe: one command per line; a bare DATA takes the next line as its payload,',
    'byte for byte. Each reply line is printed on stdout as it arrives, in order;',
    'commands are pipelined (at most 1000 in flight). Exit 0 after 200 BYE; if stdin',
    'ends without QUIT, the remaining replies are awaited, the connection is closed',
    'without QUIT, and the exit status is 0 too. Replies such as 400 BCMD or 500 FAIL',
    "are printed, not failures: use 'helo send' to check that payloads were stored.",
    '',
    'Classroom servers: --lockstep, --eol and --inline-data talk the way the exercise',
    "expects; replies ending in LF alone are accepted ('helo grade' reports such",
    'deviations). A server line that is not a reply, or a reply with nothing waiting',
    'for it, is printed as unexpected: "..." (its bytes, JSON-quoted) and makes the exit',
    'status 1.',
    '',
    'Exit status: 0 as above; 1 when the server cannot be reached, a reply does not',
    'come in time, the server closes the connection first (e.g. 408 TOUT, 503 BUSY),',
    'or it sent something unexpected; 2 for a bad command line.',
  ].join('\n'),
};

const COMMAND_PROMPT = 'C: ';
const PAYLOAD_PROMPT = 'Input data to send: ';

export async function run(argv: string[]): Promise<number> {
  const flags = parseFlags(HELP, argv);
  if (flags.help) {
    process.stdout.write(formatHelp(HELP));
    return 0;
  }
  if (flags.positionals.length > 1) {
    throw new UsageError(`expected at most one ADDRESS, got '${flags.positionals.join(' ')}'`);
  }
  const options = connectOptionsFromFlags(flags.values, flags.positionals[0]);
  const talk = talkFromFlags(flags.values);
  if (options.target.transport === 'udp') {
    const target = { ...options.target, timeoutMs: options.timeoutMs!, waitMs: options.waitMs! };
    return process.stdin.isTTY
      ? runUdpInteractive(target)
      : runUdpPiped(target, process.stdin, process.stdout);
  }
  const client = await connect({
    ...options,
    lineEnding: talk.eol,
    tolerateStrayLines: true,
  });
  // Never dropped: each stray line is shown where it came (docs/GRADING.md).
  let unexpected = 0;
  client.on('unexpected', (what) => {
    unexpected++;
    showUnexpected(`unexpected: ${what}`);
  });
  let showUnexpected = (text: string): void => void process.stdout.write(`${text}\n`);
  let status: number;
  try {
    if (process.stdin.isTTY) {
      status = await runInteractive(client, talk, (show) => (showUnexpected = show));
    } else {
      status = await runPiped(client, process.stdin, process.stdout, talk);
    }
  } finally {
    // Read on until the server closes (briefly): a line it sends after the
    // last reply is shown too, not lost.
    await client.close({ lingerMs: Math.min(options.timeoutMs || LINGER_MS, LINGER_MS) });
  }
  if (unexpected > 0) {
    throw new ClosedError(
      `${client.address} sent ${unexpected} unexpected line${unexpected === 1 ? '' : 's'} (shown above)`,
    );
  }
  return status;
}

/** The longest wait for the server to close after the session, to see what it still sends. */
const LINGER_MS = 1000;

/** How lines are put on the wire (the classroom flags). */
interface Talk {
  readonly eol: LineEnding;
  readonly lockstep: boolean;
  readonly inlineData: boolean;
}

function talkFromFlags(values: Record<string, unknown>): Talk {
  const eol = (values['eol'] ?? 'crlf') as string;
  if (eol !== 'crlf' && eol !== 'lf' && eol !== 'none') {
    throw new UsageError(`--eol must be crlf, lf or none, got '${eol}'`);
  }
  // Without a terminator only the send boundaries separate commands: one at
  // a time, and DATA with its payload in the same send.
  const isUnterminated = eol === 'none';
  return {
    eol,
    lockstep: values['lockstep'] === true || isUnterminated,
    inlineData: values['inline-data'] === true || isUnterminated,
  };
}

/** A bare DATA (blanks around it allowed, docs/PROTOCOL.md §2). */
function isBareData(line: Buffer): boolean {
  return line.length < 64 && /^[ \t]*DATA[ \t]*$/i.test(line.toString('latin1'));
}

/**
 * `DATA <payload>` for --inline-data; null when only the two-line form can
 * carry it (an empty payload, with a line terminator).
 */
function inlined(payload: Buffer, eol: LineEnding): Buffer | null {
  if (payload.length === 0 && eol !== 'none') return null;
  return Buffer.concat([Buffer.from('DATA '), payload]);
}

/** The pipe mode: commands in, reply lines out, pipelined with bounded memory. */
async function runPiped(
  client: HeloClient,
  input: Readable,
  output: Writable,
  talk: Talk,
): Promise<number> {
  // Printed from the event, not from each request's promise: the event
  // fires in wire order for every reply, including one a bare DATA and its
  // payload share, and an unsolicited 503 BUSY or 408 TOUT.
  client.on('reply', (reply) => output.write(`${reply.line}\n`));
  let failure: unknown = null;
  const stop = (error: unknown): void => {
    failure ??= error;
    input.destroy();
  };
  client.on('close', (reason) => {
    if (reason !== null) stop(reason);
  });
  output.on('error', (error) => {
    stop(new OutputError(`cannot write to stdout: ${error.message}`, { cause: error }));
    void client.close();
  });

  const outstanding: Promise<Outcome>[] = [];
  const settleOldest = async (): Promise<void> => {
    const outcome = await outstanding.shift()!;
    if (!outcome.ok) throw outcome.error;
  };
  // --inline-data: a bare DATA waits here for its payload line.
  let heldData: Buffer | null = null;
  try {
    reading: for await (const lines of readLineBatches(input)) {
      for (const line of lines) {
        // After QUIT the server closes: the rest of stdin goes unread.
        if (client.state === 'quitting' || client.state === 'closed') break reading;
        if (
          talk.inlineData &&
          heldData === null &&
          client.state === 'command' &&
          isBareData(line)
        ) {
          heldData = line;
          continue;
        }
        if (heldData !== null) {
          const oneLine = inlined(line, talk.eol);
          if (oneLine === null) outstanding.push(outcomeOf(client.send(heldData)));
          heldData = null;
          outstanding.push(outcomeOf(client.send(oneLine ?? line)));
        } else {
          outstanding.push(outcomeOf(client.send(line)));
        }
        // --lockstep: the reply comes before the next line goes (a bare DATA
        // has none of its own: its payload line follows at once).
        const limit = talk.lockstep && client.state !== 'payload' ? 1 : MAX_IN_FLIGHT;
        while (
          outstanding.length >= limit ||
          (outstanding.length > 0 && client.bufferedBytes > HIGH_WATER_BYTES)
        ) {
          await settleOldest();
        }
        if (output.writableNeedDrain) await once(output, 'drain');
      }
    }
  } catch (error) {
    // Destroying stdin to stop reading ends the loop with its own error.
    throw failure ?? error;
  }
  if (failure !== null) throw failure;
  if (client.state === 'payload' || heldData !== null) {
    // The bare DATA, last in line, will never be answered; the rest will.
    if (heldData === null) void outstanding.pop();
    while (outstanding.length > 0) await settleOldest();
    throw new InvalidArgumentError('stdin ended after a bare DATA, before its payload line');
  }
  while (outstanding.length > 0) await settleOldest();
  return 0;
}

/** The terminal mode, shaped like the lab transcript. */
async function runInteractive(
  client: HeloClient,
  talk: Talk,
  setShowUnexpected: (show: (text: string) => void) => void,
): Promise<number> {
  const input = process.stdin;
  const output = process.stdout;
  const rl = createInterface({
    input,
    output,
    terminal: true,
    historySize: 1000,
    removeHistoryDuplicates: true,
  });
  let isPromptShown = false;
  let isReadlineClosed = false;
  let serverClosed: HeloError | null = null;
  const prompt = (text: string): void => {
    if (isReadlineClosed) return;
    rl.setPrompt(text);
    rl.prompt();
    isPromptShown = true;
  };
  // readline re-emits its input's errors; unhandled, they crash the process.
  rl.on('error', () => rl.close());
  rl.on('close', () => (isReadlineClosed = true));
  // Ctrl-C ends the loop as Ctrl-D does: both leave politely with QUIT.
  rl.on('SIGINT', () => {
    if (isPromptShown && rl.line !== '') {
      output.write('^C\n');
      isPromptShown = false;
    }
    rl.close();
  });
  const showAboveInput = (text: string, thenPrompt: boolean): void => {
    const wasShown = isPromptShown;
    if (isPromptShown) {
      clearLine(output, 0);
      cursorTo(output, 0);
      isPromptShown = false;
    }
    output.write(`${text}\n`);
    // The session goes on: the prompt comes back with what was typed so far.
    if (wasShown && thenPrompt && !isReadlineClosed) {
      rl.prompt(true);
      isPromptShown = true;
    }
  };
  client.on('unsolicited', (reply) => showAboveInput(`S: ${reply.line}`, false));
  setShowUnexpected((text) => showAboveInput(`S? ${text}`, true));
  // --inline-data: a bare DATA waits here for the payload line typed next.
  let heldData: Buffer | null = null;
  client.on('close', (reason) => {
    if (reason === null) return;
    serverClosed = reason;
    rl.close();
  });

  output.write(`connected to ${client.address} — type HELO, DATA, QUIT; Ctrl-D quits\n`);
  prompt(COMMAND_PROMPT);
  for await (const line of rl) {
    isPromptShown = false;
    if (!client.isOpen) break;
    const bytes = Buffer.from(line, 'utf8');
    if (talk.inlineData && heldData === null && isBareData(bytes)) {
      heldData = bytes;
      prompt(PAYLOAD_PROMPT);
      continue;
    }
    const started = performance.now();
    let reply: Promise<Reply>;
    if (heldData !== null) {
      const oneLine = inlined(bytes, talk.eol);
      if (oneLine === null) client.send(heldData).catch(() => undefined);
      heldData = null;
      reply = client.send(oneLine ?? bytes);
    } else {
      reply = client.send(bytes);
    }
    if (client.state === 'payload') {
      // A bare DATA: its reply is the payload line's; errors surface there.
      reply.catch(() => undefined);
      prompt(PAYLOAD_PROMPT);
      continue;
    }
    const answer = await reply;
    output.write(`S: ${answer.line}   (${formatRtt(performance.now() - started)})\n`);
    if (client.state !== 'command') break;
    prompt(COMMAND_PROMPT);
  }
  rl.close();

  if (serverClosed !== null) {
    // The error goes on its own line, not after a prompt still on screen.
    if (isPromptShown) output.write('\n');
    throw serverClosed;
  }
  if (client.state === 'payload' || heldData !== null) {
    output.write('\n(DATA abandoned: no payload was sent, nothing stored)\n');
    return 0;
  }
  if (client.state === 'command') {
    output.write(isPromptShown ? 'QUIT\n' : `${COMMAND_PROMPT}QUIT\n`);
    const started = performance.now();
    const bye = await client.quit();
    output.write(`S: ${bye.line}   (${formatRtt(performance.now() - started)})\n`);
  }
  return 0;
}

function formatRtt(ms: number): string {
  return `${ms.toFixed(1)} ms`;
}
