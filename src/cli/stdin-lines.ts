/**
 * Stdin as lines of bytes, for the subcommands that send one request per
 * line (`helo client` from a pipe, `helo send`): reading the lines, and the
 * bounds that keep memory flat while they are pipelined to the server.
 */
import type { Readable } from 'node:stream';
import type { Reply } from '../client/client.js';
import { LineFramer, type LineSink } from '../core/framer.js';
import { InvalidArgumentError } from '../errors.js';

/** The longest stdin line accepted: memory stays bounded whatever is piped in. */
const MAX_STDIN_LINE_BYTES = 16 * 1024 * 1024;
/** Requests written but not answered, at most (pipelining with bounded memory). */
export const MAX_IN_FLIGHT = 1000;
/** Unsent request bytes above which reading stdin waits for replies. */
export const HIGH_WATER_BYTES = 1024 * 1024;

/**
 * Stdin as lines of bytes, one batch per chunk read. Bytes, not text: a
 * payload may hold any byte but LF, and readline would also split at a lone
 * CR. As in docs/PROTOCOL.md §2, a CR before the LF is removed; a last line
 * without LF still counts.
 */
export async function* readLineBatches(
  input: Readable,
  maxLineBytes = MAX_STDIN_LINE_BYTES,
): AsyncGenerator<Buffer[]> {
  const framer = new LineFramer(maxLineBytes);
  let batch: Buffer[] = [];
  let lineNumber = 0;
  const sink: LineSink = {
    onLine(chunk, start, end) {
      lineNumber++;
      // Copied: the framer's bytes are only valid during the call.
      batch.push(Buffer.from(chunk.subarray(start, end)));
      return true;
    },
    onLongLine() {
      throw new InvalidArgumentError(
        `stdin line ${lineNumber + 1} is longer than ${maxLineBytes} bytes`,
      );
    },
  };
  for await (const chunk of input) {
    framer.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer), sink);
    if (batch.length > 0) {
      yield batch;
      batch = [];
    }
  }
  framer.endPartialLine(sink);
  if (batch.length > 0) yield batch;
}

/** How a pipelined request ended: its reply, or why there is none. */
export type Outcome = { ok: true; reply: Reply } | { ok: false; error: unknown };

/** A promise that never rejects: it can wait in a queue without being "unhandled". */
export function outcomeOf(promise: Promise<Reply>): Promise<Outcome> {
  return promise.then(
    (reply) => ({ ok: true, reply }),
    (error: unknown) => ({ ok: false, error }),
  );
}
