/**
 * A cluster worker's HTTP port answers `/metrics`, `/readyz` and the
 * dashboard for the whole cluster: it asks the primary, which gathers every
 * worker's counters (cluster-server.ts).
 */
import { ProcessError, TimeoutError } from '../../errors.js';
import type { IpcPeer } from '../ipc/messages.js';
import { IpcRequester } from '../ipc/rpc.js';
import type { DashboardSnapshot } from '../observe/dashboard-snapshot.js';
import type { Insight } from '../observe/observatory.js';
import { INSIGHT_RPC, type InsightQuestion } from './cluster-messages.js';

/** The primary answers within a worker round trip; past this the HTTP request fails. */
const ANSWER_TIMEOUT_MS = 5_000;
/** Questions waiting for the primary at once; more fail at once (the HTTP port answers 5xx). */
const MAX_WAITING = 64;

export class RemoteInsight implements Insight {
  readonly #primary: IpcRequester<InsightQuestion, unknown>;

  constructor(primary: IpcPeer) {
    this.#primary = new IpcRequester(primary, INSIGHT_RPC, {
      maxOutstanding: MAX_WAITING,
      errors: {
        // Counted as unanswered: the primary is this far behind.
        tooMany: () => new TimeoutError('too many questions wait for the cluster primary'),
        timeout: () => new ProcessError('the cluster primary did not answer'),
        gone: () => new ProcessError('no primary'),
        answer: (message) => new ProcessError(message),
      },
    });
  }

  metrics(): Promise<string> {
    return this.#ask('metrics') as Promise<string>;
  }

  snapshot(): Promise<DashboardSnapshot> {
    return this.#ask('snapshot') as Promise<DashboardSnapshot>;
  }

  storeWritable(): Promise<boolean> {
    return this.#ask('store-writable') as Promise<boolean>;
  }

  #ask(question: InsightQuestion): Promise<unknown> {
    return this.#primary.request(question, { timeoutMs: ANSWER_TIMEOUT_MS });
  }
}
