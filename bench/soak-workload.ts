/**
 * The conversations of `npm run soak` (bench/soak.ts). Each one opens a
 * connection, does one kind of thing a real client does (well or badly),
 * and checks every reply against what protocol.md says it must be. Faults
 * are injected on purpose (resets, vanishing mid-pipeline, a client that
 * never reads) and counted as such; anything else that goes wrong is a
 * violation.
 */
import { randomInt } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { ConnectionLost, LineClient, ReplyMismatch } from './line-client.js';
import type { PayloadLedger } from './payload-ledger.js';

export const REPLY = {
  OK: '100 OK\r\n',
  BYE: '200 BYE\r\n',
  DRCV: '300 DRCV\r\n',
  BCMD: '400 BCMD\r\n',
  LONG: '401 LONG\r\n',
} as const;

export const SCENARIOS = [
  'session',
  'pipelined-helo',
  'pipelined-data',
  'overlong-lines',
  'slow-reader',
  'reset-mid-data',
  'drop-mid-pipeline',
] as const;
export type Scenario = (typeof SCENARIOS)[number];

/** How often each is picked, out of the sum. */
const WEIGHTS: Readonly<Record<Scenario, number>> = {
  session: 40,
  'pipelined-helo': 15,
  'pipelined-data': 15,
  'overlong-lines': 6,
  'slow-reader': 2,
  'reset-mid-data': 10,
  'drop-mid-pipeline': 10,
};

export const INJECTED_FAULTS = [
  'reset mid-DATA',
  'close mid-DATA',
  'reset mid-pipeline',
  'close mid-pipeline',
  'never reads: cut off by the server',
] as const;
export type InjectedFault = (typeof INJECTED_FAULTS)[number];

/** At most this many examples of each kind of violation are kept for the report. */
const SAMPLES = 5;

export class SoakCounts {
  readonly conversations = Object.fromEntries(SCENARIOS.map((name) => [name, 0])) as Record<
    Scenario | 'never-reads',
    number
  >;
  /** Request lines sent in full. */
  requests = 0;
  /** Replies received and checked, by code. */
  readonly replies = new Map<string, number>();
  /** A reply that was not the one the protocol calls for (or none came in time). */
  unexpected = 0;
  /** A connection that failed or was closed by the server without being asked to. */
  connectionErrors = 0;
  readonly injected = Object.fromEntries(INJECTED_FAULTS.map((name) => [name, 0])) as Record<
    InjectedFault,
    number
  >;
  /** Payloads answered 300 DRCV. */
  acknowledged = 0;
  readonly samples: string[] = [];

  constructor() {
    this.conversations['never-reads'] = 0;
  }

  countReplies(reply: string, times = 1): void {
    const code = reply.slice(0, 3);
    this.replies.set(code, (this.replies.get(code) ?? 0) + times);
  }

  violation(kind: 'unexpected' | 'connection', scenario: string, error: unknown): void {
    if (kind === 'unexpected') this.unexpected++;
    else this.connectionErrors++;
    if (this.samples.length < SAMPLES * 2) {
      const message = error instanceof Error ? error.message : String(error);
      this.samples.push(`${scenario}: ${message.slice(0, 300)}`);
    }
  }
}

export interface SoakContext {
  readonly port: number;
  readonly ledger: PayloadLedger;
  readonly counts: SoakCounts;
  /** The server's --max-line. */
  readonly maxLine: number;
  readonly replyTimeoutMs: number;
  /** The server's --slow-reader-timeout, ms. */
  readonly slowReaderTimeoutMs: number;
}

const TOTAL_WEIGHT = SCENARIOS.reduce((sum, name) => sum + WEIGHTS[name], 0);

export function pickScenario(): Scenario {
  let roll = randomInt(TOTAL_WEIGHT);
  for (const name of SCENARIOS) {
    roll -= WEIGHTS[name];
    if (roll < 0) return name;
  }
  return 'session';
}

/** Runs one conversation; whatever goes wrong is counted, never thrown. */
export async function runScenario(scenario: Scenario, context: SoakContext): Promise<void> {
  context.counts.conversations[scenario]++;
  try {
    await CONVERSATIONS[scenario](context);
  } catch (error) {
    const kind = error instanceof ReplyMismatch ? 'unexpected' : 'connection';
    context.counts.violation(kind, scenario, error);
  }
}

const CONVERSATIONS: Readonly<Record<Scenario, (context: SoakContext) => Promise<void>>> = {
  session,
  'pipelined-helo': pipelinedHelo,
  'pipelined-data': pipelinedData,
  'overlong-lines': overlongLines,
  'slow-reader': slowReader,
  'reset-mid-data': resetMidData,
  'drop-mid-pipeline': dropMidPipeline,
};

const chance = (probability: number): boolean => Math.random() < probability;
const eol = (): string => (chance(0.5) ? '\r\n' : '\n');

/**
 * A payload size from 0 bytes to the most a line may hold: `inline` for
 * `DATA <payload>`, whose line also holds the word and its space.
 */
function payloadSize(maxLine: number, inline: boolean): number {
  const most = inline ? maxLine - 'DATA '.length : maxLine;
  const roll = Math.random();
  if (roll < 0.1) return randomInt(2); // 0 or 1 byte
  if (roll < 0.4) return randomInt(2, 101);
  if (roll < 0.7) return randomInt(101, 2001);
  if (roll < 0.9) return randomInt(2001, most);
  return most; // exactly at the limit
}

/** One DATA request (inline or bare) for a new payload, and how to settle it. */
function dataRequest(
  context: SoakContext,
  options: { minBytes?: number } = {},
): { bytes: Buffer; lines: number; settle: (fate: 'acknowledged' | 'maybe' | 'never') => void } {
  let inline = chance(0.5);
  const size = Math.max(options.minBytes ?? 0, payloadSize(context.maxLine, inline));
  // `DATA` with nothing after its space is a bare DATA (§2): an empty payload goes on its own line.
  if (size === 0) inline = false;
  const { payload, settle } = context.ledger.create(size);
  const bytes = inline
    ? Buffer.concat([Buffer.from('DATA '), payload, Buffer.from(eol())])
    : Buffer.concat([Buffer.from(`DATA${eol()}`), payload, Buffer.from(eol())]);
  return { bytes, lines: inline ? 1 : 2, settle };
}

/** Writes `bytes` in a few pieces cut at random places (§2: any split must do). */
async function sendSplit(client: LineClient, bytes: Buffer): Promise<void> {
  let at = 0;
  while (at < bytes.length) {
    const next = chance(0.5)
      ? bytes.length
      : Math.min(bytes.length, at + 1 + randomInt(bytes.length));
    client.send(bytes.subarray(at, next));
    at = next;
    if (at < bytes.length) await sleep(randomInt(3));
  }
}

async function expectReply(
  client: LineClient,
  context: SoakContext,
  reply: string,
  times = 1,
): Promise<void> {
  await client.expect(reply.repeat(times), context.replyTimeoutMs, reply.trim());
  context.counts.countReplies(reply, times);
}

/** HELO, one to three DATA (inline or bare, split anywhere), maybe a bad command; QUIT or FIN. */
async function session(context: SoakContext): Promise<void> {
  const { counts } = context;
  const client = await LineClient.open(context.port);
  try {
    client.send(`HELO soak${eol()}`);
    counts.requests++;
    await expectReply(client, context, REPLY.OK);
    for (let n = randomInt(1, 4); n > 0; n--) {
      const data = dataRequest(context);
      await sendSplit(client, data.bytes);
      counts.requests += data.lines;
      await expectReply(client, context, REPLY.DRCV);
      data.settle('acknowledged');
      counts.acknowledged++;
    }
    if (chance(0.3)) {
      client.send(`NOOP${eol()}`);
      counts.requests++;
      await expectReply(client, context, REPLY.BCMD);
    }
    if (chance(0.7)) {
      client.send(`QUIT${eol()}`);
      counts.requests++;
      await expectReply(client, context, REPLY.BYE);
    } else {
      client.end(); // §2: a half-close is answered, then the server closes
    }
    await client.expectEnd(context.replyTimeoutMs);
  } finally {
    client.destroy();
  }
}

/** 10 to 2,000 HELO and a QUIT in one write. */
async function pipelinedHelo(context: SoakContext): Promise<void> {
  const count = randomInt(10, 2001);
  const client = await LineClient.open(context.port);
  try {
    client.send(`HELO${eol()}`.repeat(count) + 'QUIT\r\n');
    context.counts.requests += count + 1;
    await expectReply(client, context, REPLY.OK, count);
    await expectReply(client, context, REPLY.BYE);
    await client.expectEnd(context.replyTimeoutMs);
  } finally {
    client.destroy();
  }
}

/** 2 to 20 DATA of every size, pipelined and split anywhere, then QUIT. */
async function pipelinedData(context: SoakContext): Promise<void> {
  const requests = Array.from({ length: randomInt(2, 21) }, () => dataRequest(context));
  const client = await LineClient.open(context.port);
  try {
    await sendSplit(
      client,
      Buffer.concat([...requests.map((r) => r.bytes), Buffer.from('QUIT\n')]),
    );
    context.counts.requests += requests.reduce((sum, r) => sum + r.lines, 1);
    for (const request of requests) {
      await expectReply(client, context, REPLY.DRCV);
      request.settle('acknowledged');
      context.counts.acknowledged++;
    }
    await expectReply(client, context, REPLY.BYE);
    await client.expectEnd(context.replyTimeoutMs);
  } finally {
    client.destroy();
  }
}

/**
 * Lines over the limit (§2: 401 LONG, the session goes on): a command, a
 * bare DATA's payload, an inline DATA one byte too long. None is stored.
 */
async function overlongLines(context: SoakContext): Promise<void> {
  const { maxLine, ledger } = context;
  const client = await LineClient.open(context.port);
  try {
    client.send(`HELO${eol()}`);
    await expectReply(client, context, REPLY.OK);
    client.send(`${'Z'.repeat(randomInt(maxLine + 1, 3 * maxLine))}${eol()}`);
    await expectReply(client, context, REPLY.LONG);
    const bare = ledger.create(randomInt(maxLine + 1, 2 * maxLine));
    bare.settle('never');
    await sendSplit(
      client,
      Buffer.concat([Buffer.from('DATA\n'), bare.payload, Buffer.from(eol())]),
    );
    await expectReply(client, context, REPLY.LONG);
    const inline = ledger.create(maxLine - 'DATA '.length + 1);
    inline.settle('never');
    client.send(Buffer.concat([Buffer.from('DATA '), inline.payload, Buffer.from(eol())]));
    await expectReply(client, context, REPLY.LONG);
    client.send(`HELO${eol()}QUIT${eol()}`);
    context.counts.requests += 7;
    await expectReply(client, context, REPLY.OK);
    await expectReply(client, context, REPLY.BYE);
    await client.expectEnd(context.replyTimeoutMs);
  } finally {
    client.destroy();
  }
}

/**
 * Pipelines 50,000 to 200,000 requests, reads nothing for up to 1.5 s (the
 * server stops reading from it meanwhile), then reads: every reply arrives,
 * in order. Shorter than --slow-reader-timeout, so it is not cut off.
 */
async function slowReader(context: SoakContext): Promise<void> {
  const before = randomInt(50_000, 200_001);
  const after = randomInt(1, 1000);
  const data = dataRequest(context);
  const client = await LineClient.open(context.port);
  try {
    client.socket.pause();
    client.send(
      Buffer.concat([
        Buffer.from('HELO\r\n'.repeat(before)),
        data.bytes,
        Buffer.from('HELO\n'.repeat(after) + 'QUIT\n'),
      ]),
    );
    context.counts.requests += before + data.lines + after + 1;
    await sleep(Math.min(randomInt(500, 1500), context.slowReaderTimeoutMs / 2));
    client.socket.resume();
    await expectReply(client, context, REPLY.OK, before);
    await expectReply(client, context, REPLY.DRCV);
    data.settle('acknowledged');
    context.counts.acknowledged++;
    await expectReply(client, context, REPLY.OK, after);
    await expectReply(client, context, REPLY.BYE);
    await client.expectEnd(context.replyTimeoutMs);
  } finally {
    client.destroy();
  }
}

/** Sends half a payload (no LF), then vanishes: by reset or by close. Nothing is stored. */
async function resetMidData(context: SoakContext): Promise<void> {
  const client = await LineClient.open(context.port);
  const isReset = chance(0.5);
  try {
    client.send('HELO\r\n');
    context.counts.requests++;
    await expectReply(client, context, REPLY.OK);
    const { payload, settle } = context.ledger.create(randomInt(64, context.maxLine));
    settle('never');
    const head = chance(0.5) ? 'DATA ' : 'DATA\r\n';
    client.send(Buffer.concat([Buffer.from(head), payload.subarray(0, payload.length >> 1)]));
    await sleep(randomInt(30));
  } finally {
    if (isReset) client.reset();
    else client.destroy();
  }
  context.counts.injected[isReset ? 'reset mid-DATA' : 'close mid-DATA']++;
}

/**
 * Pipelines HELOs and whole DATA lines, then vanishes before (or while)
 * the replies come: each payload may be stored or not, but never twice.
 */
async function dropMidPipeline(context: SoakContext): Promise<void> {
  const client = await LineClient.open(context.port);
  const isReset = chance(0.5);
  try {
    const parts: Buffer[] = [];
    let lines = 0;
    for (let n = randomInt(2, 30); n > 0; n--) {
      if (chance(0.5)) {
        parts.push(Buffer.from('HELO\r\n'));
        lines++;
      } else {
        const data = dataRequest(context, { minBytes: 64 });
        data.settle('maybe');
        parts.push(data.bytes);
        lines += data.lines;
      }
    }
    client.send(Buffer.concat(parts));
    context.counts.requests += lines;
    if (chance(0.5)) await sleep(randomInt(5));
  } finally {
    if (isReset) client.reset();
    else client.destroy();
  }
  context.counts.injected[isReset ? 'reset mid-pipeline' : 'close mid-pipeline']++;
}

/**
 * A client that sends and never reads: the server must stop reading from
 * it and, after --slow-reader-timeout, disconnect it. Sends empty lines
 * (each answered `400 BCMD`, 10 bytes back for 1 sent) until it is cut off.
 */
export async function neverReads(context: SoakContext): Promise<void> {
  const { counts } = context;
  counts.conversations['never-reads']++;
  let client: LineClient;
  try {
    client = await LineClient.open(context.port);
  } catch (error) {
    counts.violation('connection', 'never-reads', error);
    return;
  }
  client.socket.pause();
  const chunk = Buffer.alloc(1 << 20, 0x0a);
  // Generous: the kernel buffers some MB first, then the timeout runs.
  const deadline = performance.now() + context.slowReaderTimeoutMs + 30_000;
  try {
    while (!client.isEnded && performance.now() < deadline) {
      if (client.socket.writableLength < 4 * chunk.length) client.send(chunk);
      await sleep(100);
    }
    if (!client.isEnded) {
      counts.violation(
        'connection',
        'never-reads',
        new ConnectionLost('the server did not disconnect a client that never reads'),
      );
    } else {
      counts.injected['never reads: cut off by the server']++;
    }
  } finally {
    client.destroy();
  }
}
