/**
 * The other end of `RemoteStore`: the process that owns the real store
 * answers its children's appends. Appends from every child land in the
 * same store, so they share its group commits.
 */
import type { Store } from '../../store/store.js';
import {
  decodeAppendBatch,
  encodeAppendResults,
  failedAppendResults,
  type AppendResults,
} from './append-batch.js';
import {
  APPEND_RPC,
  APPENDS_HARD_LIMIT,
  BATCH_LIMIT,
  MAX_BATCHES_IN_FLIGHT,
} from './remote-store.js';
import type { IpcPeer } from './messages.js';
import { answerRequests } from './rpc.js';

export interface StoreHostStats {
  /** Records stored for children (acknowledged). */
  stored: number;
  failed: number;
}

/** Serves `child`'s appends from `store` until the child goes; returns a function that stops. */
export function hostStore(child: IpcPeer, store: Store, stats: StoreHostStats): () => void {
  // What this child has in the store's queue: a child sends at most
  // MAX_BATCHES_IN_FLIGHT batches of BATCH_LIMIT at a time (remote-store.ts),
  // so this process holds no more than that per child; one that sends more
  // is refused whole (500 FAIL to its clients) rather than grow this process.
  let pending = 0;
  let pendingBytes = 0;
  return answerRequests(
    child,
    APPEND_RPC,
    (batch): AppendResults | Promise<AppendResults> => {
      const records = decodeAppendBatch(batch);
      const bytes = batch.payloads.byteLength;
      if (
        pending + records.length > MAX_BATCHES_IN_FLIGHT * BATCH_LIMIT.records ||
        pendingBytes + bytes > APPENDS_HARD_LIMIT.bytes
      ) {
        stats.failed += records.length;
        return failedAppendResults(
          records.length,
          'too many appends from one process wait for the store',
        );
      }
      const appends = records.map((record) => store.append(record));
      pending += records.length;
      pendingBytes += bytes;
      return Promise.allSettled(appends).then((settled) => {
        pending -= records.length;
        pendingBytes -= bytes;
        return encodeAppendResults(
          settled.map((outcome) => {
            if (outcome.status === 'fulfilled') {
              stats.stored++;
              return { id: outcome.value };
            }
            stats.failed++;
            const reason: unknown = outcome.reason;
            return { error: reason instanceof Error ? reason.message : String(reason) };
          }),
        );
      });
    },
    { maxConcurrent: MAX_BATCHES_IN_FLIGHT },
  );
}
