/**
 * The other end of `RemoteStore`: the process that owns the real store
 * answers its children's appends. Appends from every child land in the
 * same store, so they share its group commits.
 */
import type { Store } from '../../store/store.js';
import { APPENDS_HARD_LIMIT } from './remote-store.js';
import {
  isMessage,
  sendIfConnected,
  type AppendRequest,
  type AppendResult,
  type IpcPeer,
} from './messages.js';

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
  const childOnMessage = (message: unknown): void => {
    if (!isMessage<AppendRequest>(message, 'helo:append')) return;
    const bytes = message.records.reduce((sum, record) => sum + record.payload.length, 0);
    if (
      pending + message.records.length > APPENDS_HARD_LIMIT.records ||
      pendingBytes + bytes > APPENDS_HARD_LIMIT.bytes
    ) {
      stats.failed += message.records.length;
      const error = 'too many appends from one process wait for the store';
      sendIfConnected(child, {
        type: 'helo:appended',
        batch: message.batch,
        results: message.records.map(() => ({ error })),
      } satisfies AppendResult);
      return;
    }
    pending += message.records.length;
    pendingBytes += bytes;
    const appends = message.records.map((record) => store.append(record));
    void Promise.allSettled(appends).then((settled) => {
      pending -= message.records.length;
      pendingBytes -= bytes;
      const results = settled.map((outcome) => {
        if (outcome.status === 'fulfilled') {
          stats.stored++;
          return { id: outcome.value };
        }
        stats.failed++;
        const reason: unknown = outcome.reason;
        return { error: reason instanceof Error ? reason.message : String(reason) };
      });
      const reply: AppendResult = { type: 'helo:appended', batch: message.batch, results };
      // If the child is gone, so are its clients' connections: nobody to tell.
      sendIfConnected(child, reply);
    });
  };
  child.on('message', childOnMessage);
  return () => child.off('message', childOnMessage);
}
