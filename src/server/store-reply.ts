/**
 * The one place where a payload's append becomes its reply (docs/PROTOCOL.md §4):
 * `300 DRCV` once the store has committed it, `500 FAIL` if the store
 * refused it. Every transport that stores goes through here (Connection for
 * the stream transports, the UDP endpoint for datagrams), so they count and
 * log a store failure the same way.
 */
import type { Logger } from 'pino';
import { Replies, type ReplyInfo } from '../core/replies.js';
import type { NewRecord, Store } from '../store/store.js';
import type { ServerRecorder } from './observe/server-counters.js';

/**
 * Appends `record` and resolves with the reply it earns: `Replies.DRCV`
 * (counted in `payloadsStored`) or `Replies.FAIL` (counted in
 * `payloadsFailed`, logged with `logFields`). Never rejects for a store
 * failure, not even a store that throws instead of rejecting. The reply
 * itself is counted by whoever sends it.
 */
export function appendForReply(
  store: Store,
  record: NewRecord,
  counters: ServerRecorder,
  logger: Logger,
  logFields: Readonly<Record<string, unknown>>,
): Promise<ReplyInfo> {
  let appended: Promise<number>;
  try {
    appended = store.append(record);
  } catch (error) {
    // A store must reject, not throw; one that throws still costs only this payload.
    appended = Promise.reject(error as Error);
  }
  return appended.then(
    () => {
      counters.payloadStored();
      return Replies.DRCV;
    },
    (error: unknown) => {
      counters.payloadFailed();
      logger.error(
        { ...logFields, err: error instanceof Error ? error.message : String(error) },
        'payload not stored; answering 500 FAIL',
      );
      return Replies.FAIL;
    },
  );
}
