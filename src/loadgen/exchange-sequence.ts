/**
 * A connection's exchanges as one numbered sequence (setup first, then the
 * body, cycled for a steady plan), with the request bytes of any run of
 * consecutive exchanges ready to send in one write.
 *
 * The bytes are precomputed once, as one Buffer holding the setup followed
 * by enough copies of the body for the longest batch: a batch is then a
 * zero-copy slice of it. Only when that Buffer would be huge (large
 * payloads pipelined deep) is a batch concatenated on demand.
 */
import type { LoadPlan } from './load-plan.js';
import type { ReplyExpectation } from './reply-expectation.js';
import { InvalidArgumentError } from '../errors.js';

const MAX_PRECOMPUTED_BYTES = 8 * 1024 * 1024;

export class ExchangeSequence {
  readonly setupLength: number;
  readonly bodyLength: number;
  /** Exchanges in one connection's life: setup + body for a session, Infinity when steady. */
  readonly length: number;
  /** Requests in one batch, at most. */
  readonly maxBatch: number;
  /** Positions 0 .. setup + body - 1: each index maps to one of them. */
  readonly #requests: Buffer[];
  readonly #expectations: ReplyExpectation[];
  /** Setup + body repeated; null when too big to keep. */
  readonly #stream: Buffer | null;
  /** `#offsets[k]`: where exchange k starts in `#stream` (one more entry for its end). */
  readonly #offsets: number[];

  constructor(plan: LoadPlan, maxBatch: number) {
    if (plan.body.length === 0)
      throw new InvalidArgumentError('a load plan needs at least one exchange');
    this.setupLength = plan.setup.length;
    this.bodyLength = plan.body.length;
    this.maxBatch = maxBatch;
    const exchanges = [...plan.setup, ...plan.body];
    this.#requests = exchanges.map((exchange) => exchange.request);
    this.#expectations = exchanges.map((exchange) => exchange.reply);
    let streamExchanges: number;
    if (plan.kind === 'session') {
      this.length = exchanges.length;
      streamExchanges = exchanges.length;
    } else {
      this.length = Infinity;
      // A batch may start at the body's last position and run maxBatch long.
      const copies = Math.ceil((this.bodyLength - 1 + maxBatch) / this.bodyLength);
      streamExchanges = this.setupLength + copies * this.bodyLength;
    }
    this.#offsets = [0];
    for (let index = 0; index < streamExchanges; index++) {
      this.#offsets.push(this.#offsets[index]! + this.#requestAt(index).length);
    }
    const totalBytes = this.#offsets[streamExchanges]!;
    this.#stream =
      totalBytes <= MAX_PRECOMPUTED_BYTES
        ? Buffer.concat(
            Array.from({ length: streamExchanges }, (_, index) => this.#requestAt(index)),
            totalBytes,
          )
        : null;
  }

  /** True for the setup exchanges, which are not counted. */
  isSetup(index: number): boolean {
    return index < this.setupLength;
  }

  expectation(index: number): ReplyExpectation {
    return this.#expectations[this.#position(index)]!;
  }

  /** The bytes of exchanges `index .. index + count - 1`, for one write. */
  requestBytes(index: number, count: number): Buffer {
    if (count < 1 || count > this.maxBatch || index + count > this.length) {
      throw new RangeError(`no batch of ${count} exchanges at ${index}`);
    }
    const first = this.#position(index);
    if (this.#stream !== null) {
      return this.#stream.subarray(this.#offsets[first]!, this.#offsets[first + count]!);
    }
    return Buffer.concat(Array.from({ length: count }, (_, k) => this.#requestAt(first + k)));
  }

  /** An index of the same exchange within the first body cycle. */
  #position(index: number): number {
    if (index < this.setupLength + this.bodyLength) return index;
    return this.setupLength + ((index - this.setupLength) % this.bodyLength);
  }

  #requestAt(streamIndex: number): Buffer {
    return this.#requests[this.#position(streamIndex)]!;
  }
}
