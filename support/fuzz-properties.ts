/**
 * Properties of the stream protocol core (framer + session, as every stream
 * connection runs it through `StreamProtocol`), in one place for both
 * `npm test` (test/core/fuzz.test.ts: up to a few thousand runs each) and
 * `npm run fuzz` (bench/fuzz.ts: as many as you like, replayable seed).
 *
 * What lets these fail on real bugs: every byte stream is checked against a
 * reference model written from protocol.md §2, §3, §8 and §9 alone (below:
 * one byte at a time, with strings and regular expressions, sharing no code
 * with src/core), not only against the same code fed another way.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import fc from 'fast-check';
import { LineFramer, type LineSink } from '../src/core/framer.js';
import type { SessionAction } from '../src/core/session.js';
import { StreamProtocol, type ActionSink } from '../src/core/stream-protocol.js';
import { seededRandom } from './seeded-random.js';
import { splitAt } from './split-at.js';

// ---------------------------------------------------------------------------
// Scenarios: what a client sends

/** A pause long enough for §9 (`--unterminated-after-ms`) to end the partial line. */
export const SILENCE = null;

/** Bytes as a latin1 string (one character U+0000-U+00FF per byte), or a silence. */
export type Step = string | typeof SILENCE;

export interface Scenario {
  readonly maxLineBytes: number;
  /**
   * Strings are bytes: counterexamples then print readably and can be pasted
   * into a test as they are.
   */
  readonly steps: readonly Step[];
}

/** A line whose length is set relative to the limit, so that runs hit its edges. */
interface Fill {
  readonly prefix: string;
  readonly lengthFromLimit: number;
  readonly char: string;
  readonly terminator: string;
}
type Piece = string | Fill | typeof SILENCE;

const HTTP_METHODS = ['GET', 'POST', 'PUT', 'HEAD', 'OPTIONS', 'DELETE', 'PATCH', 'CONNECT'];

function latin1(bytes: readonly number[]): string {
  return String.fromCharCode(...bytes);
}

function withRandomCase(word: string): fc.Arbitrary<string> {
  return fc
    .array(fc.boolean(), { minLength: word.length, maxLength: word.length })
    .map((lower) => [...word].map((c, i) => (lower[i] ? c.toLowerCase() : c)).join(''));
}

const blanks = fc.array(fc.constantFrom(' ', '\t'), { maxLength: 3 }).map((b) => b.join(''));
const terminator = fc.oneof(
  { weight: 6, arbitrary: fc.constantFrom('\n', '\r\n') },
  { weight: 1, arbitrary: fc.constantFrom('', '\r', '\r\r\n', '\n\n', '\r\n\r\n') },
);
// Bytes that matter to framing and parsing come up far more often than chance would have them.
const notableByte = fc.constantFrom(0x00, 0xff, 0x0d, 0x20, 0x09, 0x41, 0x80, 0xc3);
const anyByte = fc.oneof(notableByte, fc.integer({ min: 0, max: 255 }));
const payloadLine = fc
  .array(
    fc.oneof(
      notableByte,
      fc.integer({ min: 0, max: 255 }).filter((b) => b !== 0x0a),
    ),
    { maxLength: 24 },
  )
  .map(latin1);
const randomBytes = (maxLength: number): fc.Arbitrary<string> =>
  fc.array(anyByte, { maxLength, size: 'max' }).map(latin1);

const commandWord = fc.oneof(
  { weight: 3, arbitrary: withRandomCase('HELO') },
  { weight: 3, arbitrary: withRandomCase('DATA') },
  { weight: 1, arbitrary: withRandomCase('QUIT') },
  {
    weight: 1,
    arbitrary: fc.constantFrom('', 'USER', 'HEL', 'HELOO', 'DATA:', 'QUIT\0', '\xc4ATA'),
  },
);
const argument = fc.oneof(
  fc.constant(''),
  blanks,
  fc.tuple(fc.constantFrom(' ', '\t'), payloadLine).map(([separator, text]) => separator + text),
  fc.constantFrom(' alice', '\t bob smith \t', ' GET / HTTP/1.1', ' Host: x', ' \xc3\xa9t\xc3\xa9'),
);
const commandLine = fc
  .tuple(blanks, commandWord, argument, terminator)
  .map((parts) => parts.join(''));
const bareDataThenPayload = fc
  .tuple(withRandomCase('DATA'), blanks, fc.constantFrom('\n', '\r\n'), payloadLine, terminator)
  .map((parts) => parts.join(''));
const httpRequestLine = fc
  .tuple(
    fc.constantFrom(...HTTP_METHODS).chain(withRandomCase),
    fc.constantFrom(' / ', ' /a?b=c ', '\t*\t', '  ', ' ', ' x:1 '),
    fc.constantFrom('HTTP/1.1', 'http/1.0', 'HTTP/2', 'HTTP/x', 'HTTP/', 'FTP/1.1', 'HTTP/1.1 x'),
  )
  .map((parts) => parts.join(''));
const httpHeader = fc.constantFrom(
  'Host: 127.0.0.1:7777',
  'host:x',
  'Origin: http://evil.example',
  'ORIGIN:',
  'Hosts: x',
  'Host x',
  'Referer: y',
);
// protocol.md §8: HTTP-looking lines, and near misses that must not be rejected.
const httpLine = fc
  .tuple(blanks, fc.oneof(httpRequestLine, httpHeader), blanks, terminator)
  .map((parts) => parts.join(''));
const fill: fc.Arbitrary<Fill> = fc.record({
  prefix: fc.constantFrom('', 'DATA ', 'helo '),
  lengthFromLimit: fc.integer({ min: -2, max: 3 }),
  char: fc.constantFrom('x', '\r', ' ', '\0'),
  terminator,
});

const piece: fc.Arbitrary<Piece> = fc.oneof(
  { weight: 5, arbitrary: commandLine },
  { weight: 2, arbitrary: bareDataThenPayload },
  { weight: 1, arbitrary: httpLine },
  { weight: 2, arbitrary: fill },
  { weight: 1, arbitrary: randomBytes(16) },
  { weight: 1, arbitrary: fc.constant(SILENCE) },
);

/** Small limits put every kind of line near its edge; 8192 is the default (§2). */
const maxLineBytes = fc.oneof(
  { weight: 5, arbitrary: fc.integer({ min: 1, max: 64 }) },
  { weight: 1, arbitrary: fc.constant(8192) },
);

function render(limit: number, pieces: readonly Piece[]): Scenario {
  const steps: Step[] = [];
  let bytes = '';
  for (const part of pieces) {
    if (part === SILENCE) {
      steps.push(bytes, SILENCE);
      bytes = '';
    } else if (typeof part === 'string') {
      bytes += part;
    } else {
      const length = Math.max(0, limit + part.lengthFromLimit - part.prefix.length);
      bytes += part.prefix + part.char.repeat(length) + part.terminator;
    }
  }
  steps.push(bytes);
  return { maxLineBytes: limit, steps: steps.filter((step) => step !== '') };
}

/** Protocol-shaped streams: commands, payloads, HTTP lines, lines around the limit, noise. */
export function protocolScenario(options: { silences: boolean }): fc.Arbitrary<Scenario> {
  const pieces = fc.array(
    options.silences ? piece : piece.filter((p) => p !== SILENCE),
    // fast-check's default size would stop at about 10 pieces.
    { maxLength: 24, size: 'max' },
  );
  return fc.tuple(maxLineBytes, pieces).map(([limit, list]) => render(limit, list));
}

/** Random bytes (CR, NUL, 0xFF and blanks more often than chance), a silence now and then. */
export const randomScenario: fc.Arbitrary<Scenario> = fc
  .tuple(
    maxLineBytes,
    fc.array(fc.oneof({ weight: 6, arbitrary: randomBytes(64) }, fc.constant(SILENCE)), {
      maxLength: 8,
      size: 'max',
    }),
  )
  .map(([limit, list]) => render(limit, list));

const anyScenario = fc.oneof(
  { weight: 3, arbitrary: protocolScenario({ silences: true }) },
  { weight: 1, arbitrary: randomScenario },
);
const cuts = fc.array(fc.nat(), { maxLength: 24, size: 'max' });

// ---------------------------------------------------------------------------
// The reference model: protocol.md read literally, one byte at a time

/** What the session does, as text: failing runs print a readable diff. */
export interface ModelEvent {
  /** Index in the stream (bytes and silences counted alike) of what made it due. */
  readonly at: number;
  readonly text: string;
}

export interface ModelOutcome {
  readonly events: readonly ModelEvent[];
  readonly isEnded: boolean;
}

function describeReply(reply: string): string {
  return `reply ${JSON.stringify(`${reply}\r\n`)}`;
}

function describeStore(payload: string, name: string | null): string {
  return `store ${JSON.stringify(payload)} name=${JSON.stringify(name)}`;
}

/** ASCII only: `é` is no `É` to a command word (§2: commands are ASCII). */
function asciiUpper(text: string): string {
  return text.replace(/[a-z]/g, (c) => c.toUpperCase());
}

/** §8: `METHOD target HTTP/<version>`, or a `Host:` / `Origin:` header. */
function modelLooksLikeHttp(line: string): boolean {
  if (/^[ \t]*(host|origin):/i.test(line)) return true;
  const words = line.split(/[ \t]+/).filter((word) => word !== '');
  return (
    words.length >= 3 &&
    HTTP_METHODS.includes(asciiUpper(words[0]!)) &&
    /^http\/[0-9]/i.test(words[words.length - 1]!)
  );
}

export function runModel(scenario: Scenario): ModelOutcome {
  const limit = scenario.maxLineBytes;
  const events: ModelEvent[] = [];
  let at = 0;
  let isEnded = false;
  // Framing (§2, §9).
  let partial = '';
  let isPartialLong = false;
  let isEmptyLineIgnored = false;
  // Session (§3).
  let isPayloadNext = false;
  let name: string | null = null;

  const emit = (text: string): void => {
    events.push({ at, text });
  };

  const onLongLine = (): void => {
    // An overlong payload line is that payload, not received; the next line is a command.
    isPayloadNext = false;
    emit(describeReply('401 LONG'));
  };

  const onLine = (line: string, isUnterminated: boolean): void => {
    if (isPayloadNext) {
      isPayloadNext = false;
      emit(describeStore(line, name));
      return;
    }
    const [, word = '', rest = ''] = /^[ \t]*([^ \t]*)([\s\S]*)$/.exec(line) ?? [];
    const command = asciiUpper(word);
    const isRestBlank = /^[ \t]*$/.test(rest);
    if (command === 'HELO') {
      const label = rest.replace(/^[ \t]+|[ \t]+$/g, '');
      if (label !== '') name = Buffer.from(label, 'latin1').toString('utf8');
      emit(describeReply('100 OK'));
    } else if (command === 'DATA' && isUnterminated && /^[ \t]$/.test(rest)) {
      // §9: `DATA ` ended by silence is DATA with an empty payload.
      emit(describeStore('', name));
    } else if (command === 'DATA' && isRestBlank) {
      isPayloadNext = true;
      emit('await-payload');
    } else if (command === 'DATA') {
      emit(describeStore(rest.slice(1), name));
    } else if (command === 'QUIT' && isRestBlank) {
      emit(describeReply('200 BYE'));
      isEnded = true;
    } else if (modelLooksLikeHttp(line)) {
      emit('reject');
      isEnded = true;
    } else {
      emit(describeReply('400 BCMD'));
    }
  };

  /** A line ended by LF, or by silence as if its LF had come (§9). */
  const endLine = (raw: string, isUnterminated = false): void => {
    const line = raw.endsWith('\r') ? raw.slice(0, -1) : raw;
    const isIgnored = isEmptyLineIgnored && line === '';
    isEmptyLineIgnored = false;
    if (isIgnored) return;
    if (line.length > limit) onLongLine();
    else onLine(line, isUnterminated);
  };

  for (const step of scenario.steps) {
    if (isEnded) break;
    if (step === SILENCE) {
      if (partial !== '' || isPartialLong) {
        if (!isPartialLong) endLine(partial, true);
        partial = '';
        isPartialLong = false;
        isEmptyLineIgnored = true;
      }
      at += 1;
      continue;
    }
    for (const char of step) {
      if (isEnded) break;
      if (char === '\n') {
        if (!isPartialLong) endLine(partial);
        partial = '';
        isPartialLong = false;
      } else if (!isPartialLong) {
        partial += char;
        // §2: answered as soon as no LF can save it (limit + 1 bytes may end in the CR of a CRLF).
        const isCertainlyLong =
          partial.length > limit + 1 || (partial.length === limit + 1 && char !== '\r');
        if (isCertainlyLong) {
          partial = '';
          isPartialLong = true;
          isEmptyLineIgnored = false;
          onLongLine();
        }
      }
      at += 1;
    }
  }
  return { events, isEnded };
}

// ---------------------------------------------------------------------------
// Driving the code under test

function describeAction(action: SessionAction, name: string | null): string {
  switch (action.type) {
    case 'reply':
      return `reply ${JSON.stringify(action.reply.bytes.toString('latin1'))}`;
    case 'store':
      return describeStore(action.payload.toString('latin1'), name);
    case 'await-payload':
      return 'await-payload';
    case 'reject':
      return 'reject';
  }
}

/** A StreamProtocol that writes down its actions. */
class Recorder implements ActionSink {
  readonly protocol: StreamProtocol;
  readonly trace: string[] = [];

  constructor(maxLineBytes: number) {
    this.protocol = new StreamProtocol(maxLineBytes);
  }

  onAction(action: SessionAction): void {
    this.trace.push(describeAction(action, this.protocol.session.name));
  }

  push(bytes: Buffer, cutPoints: readonly number[] = []): void {
    for (const chunk of splitAt(bytes, cutPoints)) this.protocol.push(chunk, this);
  }
}

type Split = (bytes: Buffer) => Buffer[];

interface Checkpoint {
  /** Bytes and silences fed so far. */
  readonly at: number;
  /** Actions out so far. */
  readonly actions: number;
}

function runCode(
  scenario: Scenario,
  split: Split,
): { recorder: Recorder; checkpoints: Checkpoint[] } {
  const recorder = new Recorder(scenario.maxLineBytes);
  const checkpoints: Checkpoint[] = [];
  let at = 0;
  for (const step of scenario.steps) {
    if (step === SILENCE) {
      recorder.protocol.endPartialLine(recorder);
      at += 1;
      checkpoints.push({ at, actions: recorder.trace.length });
      continue;
    }
    for (const chunk of split(Buffer.from(step, 'latin1'))) {
      recorder.protocol.push(chunk, recorder);
      at += chunk.length;
      checkpoints.push({ at, actions: recorder.trace.length });
    }
  }
  return { recorder, checkpoints };
}

/**
 * The code's actions equal the model's, in order, and each came out as soon
 * as the bytes that make it due went in (a server must not sit on a reply).
 */
function assertMatchesModel(scenario: Scenario, model: ModelOutcome, split: Split, how: string) {
  const { recorder, checkpoints } = runCode(scenario, split);
  const { trace, protocol } = recorder;
  for (const { at, actions } of checkpoints) {
    const due = model.events.filter((event) => event.at < at).length;
    if (actions !== due) {
      throw new Error(
        `${how}: after ${at} bytes and silences, ${actions} actions came out; the model has ` +
          `${due}.\n  code:  ${JSON.stringify(trace)}\n  model: ${JSON.stringify(model.events)}`,
      );
    }
  }
  const expected = model.events.map((event) => event.text);
  if (JSON.stringify(trace) !== JSON.stringify(expected) || protocol.isEnded !== model.isEnded) {
    throw new Error(
      `${how}: the actions differ from the model's.\n  code:  ${JSON.stringify(trace)} ` +
        `(ended: ${protocol.isEnded})\n  model: ${JSON.stringify(expected)} (ended: ${model.isEnded})`,
    );
  }
}

const whole: Split = (bytes) => [bytes];
const oneByteAtATime: Split = (bytes) => [...bytes].map((byte) => Buffer.of(byte));
/** Byte by byte costs a push per byte: for long streams, many random cuts instead. */
const BYTE_BY_BYTE_MAX = 4096;

function totalBytes(scenario: Scenario): number {
  return scenario.steps.reduce((sum, step) => sum + (step === SILENCE ? 0 : step.length), 0);
}

// ---------------------------------------------------------------------------
// The properties

/** One property, with a size for `npm test` and a share of the runs of `npm run fuzz`. */
export interface FuzzProperty {
  /** Short, for the command line (`npm run fuzz -- --property <name>`). */
  readonly name: string;
  /** What holds, as a test name. */
  readonly title: string;
  /** Runs in `npm test`. */
  readonly testRuns: number;
  /** Relative share of `npm run fuzz --runs N` (heavy properties get fewer runs). */
  readonly weight: number;
  /** Runs it with fast-check's options; a property may be async. */
  readonly check: (parameters: fc.Parameters<unknown>) => Promise<fc.RunDetails<unknown>>;
}

/** fast-check's report with the property's own message, which the report leaves out. */
export function failureReport(details: fc.RunDetails<unknown>): string {
  const error = details.errorInstance;
  const message = error instanceof Error ? error.message : String(error);
  return `${fc.defaultReportMessage(details) ?? ''}\n\n${message}`;
}

async function checkProperty<Ts>(
  property: fc.IRawProperty<Ts>,
  parameters: fc.Parameters<unknown>,
): Promise<fc.RunDetails<unknown>> {
  return (await fc.check(property, parameters as fc.Parameters<Ts>)) as fc.RunDetails<unknown>;
}

/** (a) §2: however the stream is split, the same actions as the model, in the same order. */
const matchesModelHoweverSplit = fc.property(anyScenario, cuts, (scenario, cutPoints) => {
  const model = runModel(scenario);
  assertMatchesModel(scenario, model, whole, 'fed whole');
  assertMatchesModel(scenario, model, (bytes) => splitAt(bytes, cutPoints), 'cut at random');
  if (totalBytes(scenario) <= BYTE_BY_BYTE_MAX) {
    assertMatchesModel(scenario, model, oneByteAtATime, 'one byte at a time');
  }
});

/** The replies a session gives itself; the others come from its driver (store, timers, limits). */
const SESSION_REPLIES = new Set(['100 OK', '200 BYE', '400 BCMD', '401 LONG']);

/**
 * (b) Anything at all goes in without an exception; once QUIT or a §8
 * rejection ended the session, nothing more comes out, whatever follows.
 */
const endsForGood = fc.property(
  fc.tuple(maxLineBytes, fc.uint8Array({ maxLength: 8192, size: 'max' })),
  cuts,
  fc.uint8Array({ minLength: 1, maxLength: 256 }),
  ([limit, noise], cutPoints, after) => {
    const protocol = new StreamProtocol(limit);
    const actions: SessionAction[] = [];
    const sink: ActionSink = { onAction: (action) => actions.push(action) };
    for (const chunk of splitAt(Buffer.from(noise), cutPoints)) protocol.push(chunk, sink);
    // An LF ends whatever line is open; two QUITs end a session even in payload mode.
    protocol.push(Buffer.from('\nQUIT\r\nQUIT\n'), sink);
    for (const action of actions) {
      if (action.type === 'reply' && !SESSION_REPLIES.has(action.reply.bytes.toString().trim())) {
        throw new Error(`the session sent ${action.reply.bytes.toString().trim()}`);
      }
    }
    if (!protocol.isEnded) {
      // Only a limit under 4 bytes makes QUIT itself an overlong line.
      if (limit >= 'QUIT'.length) throw new Error('QUIT did not end the session');
      return;
    }
    const count = actions.length;
    protocol.push(Buffer.from(after), sink);
    protocol.endPartialLine(sink);
    protocol.push(Buffer.from('HELO\nDATA x\n'), sink);
    if (actions.length !== count || !protocol.isEnded) {
      throw new Error(`${actions.length - count} actions after the session ended`);
    }
  },
);

interface BigStream {
  readonly maxLineBytes: number;
  readonly totalBytes: number;
  readonly largestChunk: number;
  /** Chance that a byte is LF (and, separately, CR). */
  readonly lfChance: number;
  readonly crChance: number;
  readonly seed: number;
}

const bigStream: fc.Arbitrary<BigStream> = fc.record({
  maxLineBytes,
  totalBytes: fc.integer({ min: 1 << 16, max: 1 << 20 }),
  largestChunk: fc.constantFrom(16, 1500, 65536),
  lfChance: fc.constantFrom(0, 1e-6, 1e-4, 1e-2),
  crChance: fc.constantFrom(0, 1e-2, 0.5),
  seed: fc.integer(),
});

/** The chunks of a big stream, made one at a time (only one is alive at once). */
function* chunksOf(stream: BigStream): Generator<Buffer> {
  const random = seededRandom(stream.seed);
  for (let sent = 0; sent < stream.totalBytes;) {
    const size = Math.min(stream.totalBytes - sent, 1 + Math.floor(random() * stream.largestChunk));
    const chunk = Buffer.alloc(size, 0x78);
    const marks = Math.round(size * (stream.lfChance + stream.crChance) + random() - 0.5);
    for (let i = 0; i < marks; i++) {
      const isLf = random() * (stream.lfChance + stream.crChance) < stream.lfChance;
      chunk[Math.floor(random() * size)] = isLf ? 0x0a : 0x0d;
    }
    sent += size;
    yield chunk;
  }
}

/**
 * (c) Memory: the framer keeps at most limit + 1 bytes of an unfinished line
 * (framer.ts's promise), exactly the bytes since the last LF until the line
 * is certainly too long, then none, over streams of up to a megabyte.
 */
const framerHoldsAtMostALine = fc.property(bigStream, (stream) => {
  const limit = stream.maxLineBytes;
  const framer = new LineFramer(limit);
  const sink: LineSink = { onLine: () => true, onLongLine: () => true };
  let sinceLf = 0;
  for (const chunk of chunksOf(stream)) {
    framer.push(chunk, sink);
    const lf = chunk.lastIndexOf(0x0a);
    sinceLf = lf === -1 ? sinceLf + chunk.length : chunk.length - lf - 1;
    const lastByte = chunk[chunk.length - 1];
    const isLong = sinceLf > limit + 1 || (sinceLf === limit + 1 && lastByte !== 0x0d);
    const expected = isLong ? 0 : sinceLf;
    if (framer.bufferedBytes !== expected || framer.bufferedBytes > limit + 1) {
      throw new Error(
        `holds ${framer.bufferedBytes} bytes, expected ${expected} (limit ${limit}, ` +
          `${sinceLf} bytes since the last LF)`,
      );
    }
  }
});

let collectGarbage: (() => void) | undefined;

/**
 * Frees what is unreachable. V8 frees the memory of ArrayBuffers behind a
 * full collection, on later turns of the event loop: hence several, apart.
 * `--expose-gc` is set here so that no caller needs a node flag.
 */
async function settleMemory(): Promise<void> {
  if (collectGarbage === undefined) {
    v8.setFlagsFromString('--expose-gc');
    collectGarbage = vm.runInNewContext('gc') as () => void;
  }
  for (let i = 0; i < 3; i++) {
    collectGarbage();
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const STREAM_PROTOCOL_FED = 16 << 20;
/** Far below the bytes fed, far above one line and Node's own buffer noise. */
const STREAM_PROTOCOL_GROWTH_MAX = 1 << 20;

/**
 * (c) Memory, end to end: StreamProtocol has no count of what it holds, so
 * measure the buffer memory of the process around 16 MiB fed to one, in
 * fresh chunks: a copy or a slice kept of every chunk would both show.
 */
const streamProtocolHoldsLittle = fc.asyncProperty(bigStream, async (stream) => {
  const protocol = new StreamProtocol(stream.maxLineBytes);
  const sink: ActionSink = { onAction: () => {} };
  await settleMemory();
  const before = process.memoryUsage().arrayBuffers;
  // Big chunks: the point is the volume, and a push per 16 bytes would take seconds.
  const fed = { ...stream, totalBytes: STREAM_PROTOCOL_FED, largestChunk: 65536 };
  for (const chunk of chunksOf(fed)) protocol.push(chunk, sink);
  await settleMemory();
  const growth = process.memoryUsage().arrayBuffers - before;
  if (growth > STREAM_PROTOCOL_GROWTH_MAX) {
    throw new Error(`buffer memory grew by ${growth} bytes over ${STREAM_PROTOCOL_FED} fed`);
  }
  // Keeps the protocol alive until after the second measurement.
  return protocol.lines >= 0;
});

/** Removes the one empty line that a §9 silence makes the next LF end. */
function withoutLeadingEmptyLine(bytes: Buffer): Buffer {
  if (bytes[0] === 0x0a) return bytes.subarray(1);
  if (bytes[0] === 0x0d && bytes[1] === 0x0a) return bytes.subarray(2);
  return bytes;
}

/**
 * (d) §9: a silence after a partial line does what its LF would have done,
 * and what follows is then treated alike but for the LF that ends an empty
 * remainder. Without a partial line, a silence does nothing.
 */
const silenceActsAsLf = fc.property(
  protocolScenario({ silences: false }),
  fc.nat(),
  cuts,
  (scenario, cutAt, cutPoints) => {
    const bytes = Buffer.from(scenario.steps.join(''), 'latin1');
    const at = cutAt % (bytes.length + 1);
    const [prefix, rest] = [bytes.subarray(0, at), bytes.subarray(at)];
    const silent = new Recorder(scenario.maxLineBytes);
    const terminated = new Recorder(scenario.maxLineBytes);
    silent.push(prefix, cutPoints);
    terminated.push(prefix, cutPoints);
    const hadPartialLine = silent.protocol.hasPartialLine;
    const partial = prefix.toString('latin1').split('\n').pop()!;
    if (silent.protocol.session.state === 'command' && /^[ \t]*data[ \t]\r?$/i.test(partial)) {
      // §9's one exception, `DATA ` ended by silence is an empty payload: the model checks it (a).
      return;
    }
    const before = silent.trace.length;
    silent.protocol.endPartialLine(silent);
    if (!hadPartialLine) {
      if (silent.trace.length !== before) throw new Error('a silence without a partial line acted');
      return;
    }
    terminated.push(Buffer.from('\n'));
    assertSameTrace(silent.trace, terminated.trace, 'silence vs LF');
    silent.push(rest, cutPoints);
    terminated.push(withoutLeadingEmptyLine(rest), cutPoints);
    assertSameTrace(silent.trace, terminated.trace, 'what followed');
  },
);

function assertSameTrace(silent: readonly string[], terminated: readonly string[], what: string) {
  if (JSON.stringify(silent) !== JSON.stringify(terminated)) {
    throw new Error(
      `${what}: \n  silence: ${JSON.stringify(silent)}\n  LF:      ${JSON.stringify(terminated)}`,
    );
  }
}

export const FUZZ_PROPERTIES: readonly FuzzProperty[] = [
  {
    name: 'split',
    title: 'gives the actions of the reference model however the stream is split (§2, §3, §8, §9)',
    testRuns: 2000,
    weight: 10,
    check: (parameters) => checkProperty(matchesModelHoweverSplit, parameters),
  },
  {
    name: 'ends',
    title: 'takes any bytes without throwing, and does nothing once the session ended',
    testRuns: 300,
    weight: 5,
    check: (parameters) => checkProperty(endsForGood, parameters),
  },
  {
    name: 'framer-memory',
    title: 'keeps at most limit + 1 bytes of a line in the framer over megabyte streams',
    testRuns: 20,
    weight: 0.2,
    check: (parameters) => checkProperty(framerHoldsAtMostALine, parameters),
  },
  {
    name: 'protocol-memory',
    title: 'grows no buffer memory while megabytes without LF go through StreamProtocol',
    testRuns: 3,
    weight: 0.005,
    check: (parameters) => checkProperty(streamProtocolHoldsLittle, parameters),
  },
  {
    name: 'silence',
    title: 'treats a §9 silence after a partial line as its LF, and after none as nothing',
    testRuns: 1000,
    weight: 5,
    check: (parameters) => checkProperty(silenceActsAsLf, parameters),
  },
];
