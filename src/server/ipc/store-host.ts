/**
 * The other end of `RemoteStore`: the process that owns the real store
 * answers its children's appends. Appends from every child land in the
 * same store, so they share its group commits.
 */
import type { Store } from '../../store/store.js';
import { APPEND_RPC, APPENDS_HARD_LIMIT } from './remote-store.js';
import type { IpcPeer } from './messages.js';
import { answerRequests } from './rpc.js';

export interface StoreHostStats {
  /** Records stored for children (acknowledged). */
  stored: number;
  failed: number;
}

/** Serves `child`'s appends from `store` until the child goes; returns a function that stops. */
export function hostStore(child: IpcPeer, store: Store, stats: StoreHostStats): () => void {
  // What this child has in the store's queue: bounded like the child's own
  // side (remote-store.ts), so a child that ignores its bound cannot grow
  // this process; beyond it a batch is refused whole (500 FAIL to its clients).
  let pending = 0;
  let pendingBytes = 0;
  return answerRequests(
    child,
    APPEND_RPC,
    (records) => {
      const bytes = records.reduce((sum, record) => sum + record.payload.length, 0);
      if (
        pending + records.length > APPENDS_HARD_LIMIT.records ||
        pendingBytes + bytes > APPENDS_HARD_LIMIT.bytes
      ) {
        stats.failed += records.length;
        const error = 'too many appends from one process wait for the store';
        return records.map(() => ({ error }));
      }
      const appends = records.map((record) => store.append(record));
      pending += records.length;
      pendingBytes += bytes;
      return Promise.allSettled(appends).then((settled) => {
        pending -= records.length;
        pendingBytes -= bytes;
        return settled.map((outcome) => {
          if (outcome.status === 'fulfilled') {
            stats.stored++;
            return { id: outcome.value };
          }
          stats.failed++;
          const reason: unknown = outcome.reason;
          return { error: reason instanceof Error ? reason.message : String(reason) };
        });
      });
    },
    // Each batch in store holds a record, so the record bound above refuses
    // first and this one is never reached (it only bounds empty batches).
    { maxConcurrent: APPENDS_HARD_LIMIT.records + 1 },
  );
}
