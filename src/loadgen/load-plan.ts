/**
 * What each connection of a load does, as plain data: the built-in
 * workloads (workloads.ts), `--request`/`--expect` and `--script` files
 * (script.ts) all become a LoadPlan, so one engine drives them all.
 */
import type { ReplyExpectation } from './reply-expectation.js';

/** One request and the reply that answers it. */
export interface Exchange {
  /** The bytes sent: one or more whole lines. */
  readonly request: Buffer;
  readonly reply: ReplyExpectation;
}

/**
 * - `steady`: each connection stays open; `setup` is sent once, then `body`
 *   repeats for as long as the load runs. The unit counted is one request.
 * - `session`: each connection runs `setup` then `body` once, closes, and a
 *   new one takes its place. The unit counted is one session.
 */
export type PlanKind = 'steady' | 'session';

export interface LoadPlan {
  readonly kind: PlanKind;
  /** Exchanges that prepare a connection (e.g. `HELO bench`): not counted, their replies must match. */
  readonly setup: readonly Exchange[];
  /** The counted exchanges. Never empty. */
  readonly body: readonly Exchange[];
  /** One line for the report, e.g. `HELO`, `DATA (100-byte payload)`. */
  readonly description: string;
}

/**
 * A plan that crossed a thread boundary: structured cloning turns each
 * Buffer into a plain Uint8Array, which this wraps again without copying.
 */
export function revivePlan(cloned: LoadPlan): LoadPlan {
  const buffer = (bytes: Uint8Array): Buffer =>
    Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const exchange = (item: Exchange): Exchange => ({
    request: buffer(item.request),
    reply: {
      lineCount: item.reply.lineCount,
      lines: item.reply.lines === null ? null : item.reply.lines.map(buffer),
    },
  });
  return {
    kind: cloned.kind,
    setup: cloned.setup.map(exchange),
    body: cloned.body.map(exchange),
    description: cloned.description,
  };
}
