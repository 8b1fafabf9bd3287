/**
 * The other end of `RemoteStore`: the process that owns the real store
 * answers its children's appends. Appends from every child land in the
 * same store, so they share its group commits.
 */
import type { Store } from '../../store/store.js';
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
  const childOnMessage = (message: unknown): void => {
    if (!isMessage<AppendRequest>(message, 'helo:append')) return;
    const appends = message.records.map((record) => store.append(record));
    void Promise.allSettled(appends).then((settled) => {
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
