/**
 * How a batch of appends crosses the IPC channel (remote-store.ts ->
 * store-host.ts), and how its answers come back.
 *
 * Why not an array of records? Structured clone copies every object, string
 * and Buffer of a message one by one, and the receiver allocates each again:
 * a batch of thousands of small records became thousands of objects, strings
 * and Buffer views in both processes, most of them promoted to the old
 * generation before they died, and that garbage, not the payloads, was most
 * of a busy cluster's memory (docs/RELIABILITY.md). Here a batch is a few
 * flat values whatever its size: all payloads back to back in ONE Buffer
 * with their end offsets, the receive times in one Float64Array, and each
 * distinct session, peer, HELO name and certificate once in a string table
 * that the records point into.
 */
import { StoreError } from '../../errors.js';
import type { NewRecord } from '../../store/store.js';

/** Fields per record in `AppendBatch.refs`: session, peer, name, clientCert, proxy. */
const REFS_PER_RECORD = 5;
/** In `refs`: the field is null. */
const NO_STRING = -1;

export interface AppendBatch {
  /** Every payload, back to back. */
  readonly payloads: Uint8Array;
  /** `ends[i]`: where record i's payload ends in `payloads` (it starts where i - 1's ends). */
  readonly ends: Uint32Array;
  readonly receivedAt: Float64Array;
  /** Each distinct string of the batch once. */
  readonly strings: readonly string[];
  /** Per record, the index in `strings` of its session, peer, name, clientCert and proxy (-1: null). */
  readonly refs: Int32Array;
}

/** The answer: each record's id, NaN when it was not stored; `errors` says why, one per NaN, in order. */
export interface AppendResults {
  readonly ids: Float64Array;
  readonly errors: readonly string[];
}

export function encodeAppendBatch(records: readonly NewRecord[]): AppendBatch {
  const count = records.length;
  let bytes = 0;
  for (const record of records) bytes += record.payload.length;
  const payloads = Buffer.allocUnsafe(bytes);
  const ends = new Uint32Array(count);
  const receivedAt = new Float64Array(count);
  const refs = new Int32Array(count * REFS_PER_RECORD);
  const strings: string[] = [];
  const indexOf = new Map<string, number>();
  const ref = (value: string | null | undefined): number => {
    if (value === null || value === undefined) return NO_STRING;
    let index = indexOf.get(value);
    if (index === undefined) {
      index = strings.push(value) - 1;
      indexOf.set(value, index);
    }
    return index;
  };
  let offset = 0;
  for (let i = 0; i < count; i++) {
    const record = records[i]!;
    offset += record.payload.copy(payloads, offset);
    ends[i] = offset;
    receivedAt[i] = record.receivedAt;
    const at = i * REFS_PER_RECORD;
    refs[at] = ref(record.session);
    refs[at + 1] = ref(record.peer);
    refs[at + 2] = ref(record.name);
    refs[at + 3] = ref(record.clientCert);
    refs[at + 4] = ref(record.proxy);
  }
  return { payloads, ends, receivedAt, strings, refs };
}

/**
 * The records of a batch; their payloads are views into `batch.payloads`.
 * The sender is the same build, but a batch is checked whole anyway, so a
 * wrong one fails (its clients get `500 FAIL`) instead of storing garbage.
 *
 * @throws {StoreError} when the batch is malformed
 */
export function decodeAppendBatch(batch: unknown): NewRecord[] {
  if (!isAppendBatch(batch)) throw new StoreError('malformed batch of appends');
  const { payloads, ends, receivedAt, strings, refs } = batch;
  const bytes = Buffer.from(payloads.buffer, payloads.byteOffset, payloads.byteLength);
  const text = (index: number): string | null => {
    if (index === NO_STRING) return null;
    const value = strings[index];
    if (typeof value !== 'string') throw new StoreError('malformed batch of appends');
    return value;
  };
  const records: NewRecord[] = [];
  let start = 0;
  for (let i = 0; i < ends.length; i++) {
    const end = ends[i]!;
    if (end < start || end > bytes.length) throw new StoreError('malformed batch of appends');
    const at = i * REFS_PER_RECORD;
    const session = text(refs[at]!);
    const peer = text(refs[at + 1]!);
    if (session === null || peer === null) throw new StoreError('malformed batch of appends');
    records.push({
      receivedAt: receivedAt[i]!,
      session,
      peer,
      name: text(refs[at + 2]!),
      payload: bytes.subarray(start, end),
      clientCert: text(refs[at + 3]!),
      proxy: text(refs[at + 4]!),
    });
    start = end;
  }
  return records;
}

function isAppendBatch(value: unknown): value is AppendBatch {
  if (typeof value !== 'object' || value === null) return false;
  const batch = value as Partial<Record<keyof AppendBatch, unknown>>;
  return (
    batch.payloads instanceof Uint8Array &&
    batch.ends instanceof Uint32Array &&
    batch.receivedAt instanceof Float64Array &&
    batch.refs instanceof Int32Array &&
    Array.isArray(batch.strings) &&
    batch.receivedAt.length === batch.ends.length &&
    batch.refs.length === batch.ends.length * REFS_PER_RECORD
  );
}

/** One outcome per record, in order: an id, or why it was not stored. */
export function encodeAppendResults(
  outcomes: readonly ({ readonly id: number } | { readonly error: string })[],
): AppendResults {
  const ids = new Float64Array(outcomes.length);
  const errors: string[] = [];
  outcomes.forEach((outcome, i) => {
    if ('id' in outcome) ids[i] = outcome.id;
    else {
      ids[i] = NaN;
      errors.push(outcome.error);
    }
  });
  return { ids, errors };
}

/** The same answer for every record of a batch of `count`. */
export function failedAppendResults(count: number, error: string): AppendResults {
  return { ids: new Float64Array(count).fill(NaN), errors: new Array<string>(count).fill(error) };
}
