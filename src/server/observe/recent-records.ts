/**
 * The dashboard's "recent records": the last payloads this server stored,
 * kept in memory by the process that owns the store, with a preview that
 * is safe to show (the page still inserts it as text, never as HTML).
 */
import type { NewRecord, Store, StoredRecord } from '../../store/store.js';
import type { RecentRecord } from './dashboard-snapshot.js';

const KEEP = 20;
const PREVIEW_BYTES = 80;
/** C0 and C1 controls, DEL, and the bidirectional marks and overrides. */
const UNSAFE_CHARACTERS =
  // eslint-disable-next-line no-control-regex
  /[\u0000-\u001f\u007f-\u009f\u200e\u200f\u202a-\u202e\u2066-\u2069]/g;

/**
 * The first bytes of a payload as text a person can read: invalid UTF-8
 * becomes U+FFFD, control characters (and the bidirectional overrides
 * that could make text read backwards) become U+00B7 `·`.
 */
function previewOf(payload: Buffer): { preview: string; truncated: boolean } {
  const truncated = payload.length > PREVIEW_BYTES;
  const text = payload.subarray(0, PREVIEW_BYTES).toString('utf8');
  const safe = text.replace(UNSAFE_CHARACTERS, '·');
  return { preview: safe, truncated };
}

export class RecentRecords {
  readonly #records: RecentRecord[] = [];

  add(id: number, record: NewRecord): void {
    this.#records.unshift({
      id,
      receivedAt: new Date(record.receivedAt).toISOString(),
      peer: record.peer,
      name: record.name,
      size: record.payload.length,
      ...previewOf(record.payload),
    });
    if (this.#records.length > KEEP) this.#records.length = KEEP;
  }

  /** Newest first. */
  list(): RecentRecord[] {
    return [...this.#records];
  }
}

/** The same store, noting each stored record in `recent`. */
export function storeNotingRecent(store: Store, recent: RecentRecords): Store {
  return {
    append: async (record: NewRecord): Promise<number> => {
      const id = await store.append(record);
      recent.add(id, record);
      return id;
    },
    read: (afterId: number, limit: number): Promise<StoredRecord[]> => store.read(afterId, limit),
    close: () => store.close(),
  };
}
