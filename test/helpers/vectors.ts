/**
 * The protocol test vectors (test/vectors/protocol.json) and a way to run
 * them over the pure core. Transports replay the same file over sockets.
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { StreamProtocol } from '../../src/core/stream-protocol.js';
import { Replies } from '../../src/core/replies.js';
import type { SessionAction } from '../../src/core/session.js';
import type { StoredRecord } from '../../src/store/store.js';
import assert from 'node:assert/strict';

export { splitAt } from '../../support/split-at.js';

export type Step = string | { readonly pause: true };

export interface Vector {
  readonly name: string;
  readonly spec?: string;
  readonly options?: { readonly maxLineBytes?: number; readonly unterminatedAfterMs?: number };
  readonly input: string | readonly Step[];
  readonly replies: string;
  readonly stored: readonly string[];
  readonly storedNames?: readonly (string | null)[];
  readonly closes: boolean;
}

const VECTORS_PATH = fileURLToPath(new URL('../../../test/vectors/protocol.json', import.meta.url));

export function loadVectors(): Vector[] {
  return (JSON.parse(readFileSync(VECTORS_PATH, 'utf8')) as { vectors: Vector[] }).vectors;
}

/** Vector strings are bytes: one character U+0000-U+00FF per byte. */
export function bytes(text: string): Buffer {
  return Buffer.from(text, 'latin1');
}

/** The input as byte segments, with `null` where the client falls silent (§9). */
export function segmentsOf(vector: Vector): (Buffer | null)[] {
  const steps = typeof vector.input === 'string' ? [vector.input] : vector.input;
  return steps.map((step) => (typeof step === 'string' ? bytes(step) : null));
}

export function oneByteAtATime(data: Buffer): Buffer[] {
  return [...data].map((byte) => Buffer.of(byte));
}

export interface Outcome {
  replies: string;
  stored: string[];
  storedNames: (string | null)[];
  closes: boolean;
}

/**
 * Runs a vector over the pure core, delivering each segment in the pieces
 * `split` makes of it. A store action is taken as committed (300 DRCV).
 */
export function runOverCore(vector: Vector, split: (segment: Buffer) => Buffer[]): Outcome {
  const protocol = new StreamProtocol(vector.options?.maxLineBytes ?? 8192);
  const outcome: Outcome = { replies: '', stored: [], storedNames: [], closes: false };
  const sink = {
    onAction(action: SessionAction): void {
      if (action.type === 'reply') outcome.replies += action.reply.bytes.toString('latin1');
      if (action.type === 'store') {
        outcome.stored.push(action.payload.toString('latin1'));
        outcome.storedNames.push(protocol.session.name);
        outcome.replies += Replies.DRCV.bytes.toString('latin1');
      }
    },
  };
  for (const segment of segmentsOf(vector)) {
    if (segment === null) {
      if ((vector.options?.unterminatedAfterMs ?? 0) > 0) protocol.endPartialLine(sink);
      continue;
    }
    for (const piece of split(segment)) protocol.push(piece, sink);
  }
  outcome.closes = protocol.isEnded;
  return outcome;
}

/** The records a vector's session left in a store are its `stored` payloads (and names), byte for byte. */
export function assertStoredAsVector(records: readonly StoredRecord[], vector: Vector): void {
  assert.deepEqual(
    records.map((record) => record.payload.toString('latin1')),
    vector.stored,
    'stored payloads, byte for byte',
  );
  if (vector.storedNames) {
    assert.deepEqual(
      records.map((record) => record.name),
      vector.storedNames,
      'stored names',
    );
  }
}
