/**
 * `helo client udp://…` and `helo send udp://…`: the same commands over
 * datagrams (docs/PROTOCOL.md §6). Nothing carries across datagrams, so a bare
 * `DATA` line and the payload line after it travel together, as one
 * `DATA <payload>` request; every other line is one request. Each request
 * is retried by the client library if its reply is lost.
 */
import { createInterface } from 'node:readline/promises';
import type { Readable, Writable } from 'node:stream';
import { connectUdp, type UdpClient } from '../client/udp-client.js';
import { Session } from '../core/session.js';
import { InvalidArgumentError, ReplyError } from '../errors.js';
import { readLineBatches } from './stdin-lines.js';

/** What is printed of a reply. */
interface ReplyLine {
  readonly code: number;
  readonly line: string;
}

export interface UdpTarget {
  readonly host: string;
  readonly port: number;
  readonly timeoutMs: number;
  readonly waitMs: number;
}

function openUdp(target: UdpTarget): Promise<UdpClient> {
  return connectUdp({
    host: target.host,
    port: target.port,
    timeoutMs: target.timeoutMs,
    waitMs: target.waitMs,
  });
}

/** True for a line the server would take as a bare DATA (its payload comes next). */
function isBareData(line: Buffer): boolean {
  return new Session().onLine(line, 0, line.length).type === 'await-payload';
}

/** Reads lines, pairs a bare DATA with its payload, sends each request, reports each reply. */
async function exchange(
  client: UdpClient,
  lines: AsyncIterable<Buffer>,
  onReply: (reply: ReplyLine, rttMs: number) => void,
  onPayloadPrompt: () => void,
): Promise<'bye' | 'end' | 'abandoned-data'> {
  let bareData = false;
  for await (const line of lines) {
    const started = performance.now();
    let reply: ReplyLine;
    if (bareData) {
      bareData = false;
      reply = await client.data(line).catch((error: unknown) => {
        if (error instanceof ReplyError) return error.reply;
        throw error;
      });
    } else if (isBareData(line)) {
      bareData = true;
      onPayloadPrompt();
      continue;
    } else {
      reply = await client.send(line);
    }
    onReply(reply, performance.now() - started);
    if (reply.code === 200) return 'bye';
  }
  return bareData ? 'abandoned-data' : 'end';
}

async function* linesOf(input: Readable): AsyncGenerator<Buffer> {
  for await (const batch of readLineBatches(input)) yield* batch;
}

/** `helo client udp://…` from a pipe: a reply line per request, exit 0 after 200 BYE or at the end. */
export async function runUdpPiped(
  target: UdpTarget,
  input: Readable,
  output: Writable,
): Promise<number> {
  const client = await openUdp(target);
  try {
    const end = await exchange(
      client,
      linesOf(input),
      (reply) => output.write(`${reply.line}\n`),
      () => undefined,
    );
    if (end === 'abandoned-data') {
      throw new InvalidArgumentError('stdin ended after a bare DATA, before its payload line');
    }
    return 0;
  } finally {
    input.destroy();
    await client.close();
  }
}

/** `helo client udp://…` at a terminal: the lab transcript, one datagram per request. */
export async function runUdpInteractive(target: UdpTarget): Promise<number> {
  const client = await openUdp(target);
  const output = process.stdout;
  const rl = createInterface({ input: process.stdin, output, terminal: true, historySize: 1000 });
  rl.on('SIGINT', () => rl.close());
  output.write(
    `${client.url}: datagrams, no connection — each request is retried if its reply is lost; ` +
      'type HELO, DATA, QUIT; Ctrl-D quits\n',
  );
  rl.setPrompt('C: ');
  rl.prompt();
  async function* typed(): AsyncGenerator<Buffer> {
    for await (const line of rl) yield Buffer.from(line);
  }
  try {
    await exchange(
      client,
      typed(),
      (reply, rttMs) => {
        output.write(`S: ${reply.line}   (${rttMs.toFixed(1)} ms)\n`);
        if (reply.code === 200) return; // BYE: the session is over, no prompt
        rl.setPrompt('C: ');
        rl.prompt();
      },
      () => {
        rl.setPrompt('Input data to send: ');
        rl.prompt();
      },
    );
    return 0;
  } finally {
    rl.close();
    await client.close();
  }
}

/** `helo send udp://…`: one DATA datagram per payload (HELO names nothing over UDP). */
export async function sendUdp(
  target: UdpTarget,
  payloads: AsyncIterable<Buffer[]>,
): Promise<number> {
  const client = await openUdp(target);
  let stored = 0;
  try {
    for await (const batch of payloads) {
      for (const payload of batch) {
        try {
          await client.data(payload);
        } catch (error) {
          if (!(error instanceof ReplyError)) throw error;
          throw new ReplyError(
            error.reply,
            '300 DRCV',
            `payload ${stored + 1} was not stored: server replied ${error.reply.line} (${stored} stored)`,
          );
        }
        stored++;
      }
    }
    if (process.stderr.isTTY) process.stderr.write(`sent ${stored} payload(s) to ${client.url}\n`);
    return 0;
  } finally {
    await client.close();
  }
}
