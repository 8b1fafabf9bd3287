/** The messages between run-load.ts and its load-worker.ts threads. */
import type { ThreadLoadOptions, ThreadResult } from './thread-load.js';

export interface WorkerData {
  readonly options: ThreadLoadOptions;
  /** Start measuring at once (no warm-up), with this thread's share of `--requests`. */
  readonly measuring: boolean;
  readonly budget: number | null;
  /** How often to post progress; null for never. */
  readonly progressIntervalMs: number | null;
}

export type ToWorker =
  /** The warm-up is over; `budget` is this thread's share of `--requests` (null: no limit). */
  | { readonly type: 'measure'; readonly budget: number | null }
  /** Stop sending, collect the replies still due, then post the result. */
  | { readonly type: 'stop' };

export type FromWorker =
  /** The connections are being opened: the phases start counting now. */
  | { readonly type: 'started' }
  | { readonly type: 'progress'; readonly replies: number; readonly errors: number }
  | { readonly type: 'result'; readonly result: ThreadResult };
