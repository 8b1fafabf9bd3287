/**
 * A cluster worker's HTTP port answers `/metrics`, `/readyz` and the
 * dashboard for the whole cluster: it asks the primary, which gathers every
 * worker's counters (cluster-server.ts).
 */
import { TimeoutError } from '../../errors.js';
import { isMessage, sendIfConnected, type IpcPeer } from '../ipc/messages.js';
import type { DashboardSnapshot } from '../observe/dashboard-snapshot.js';
import type { Insight } from '../observe/observatory.js';
import type { InsightAnswer, InsightQuestion, InsightRequest } from './cluster-messages.js';
import { ProcessError } from '../../errors.js';

/** The primary answers within a worker round trip; past this the HTTP request fails. */
const ANSWER_TIMEOUT_MS = 5_000;
/** Questions waiting for the primary at once; more fail at once (the HTTP port answers 5xx). */
const MAX_WAITING = 64;

export class RemoteInsight implements Insight {
  readonly #primary: IpcPeer;
  readonly #waiting = new Map<number, (answer: InsightAnswer) => void>();
  #nextRequest = 1;

  constructor(primary: IpcPeer) {
    this.#primary = primary;
    primary.on('message', (message: unknown) => {
      if (!isMessage<InsightAnswer>(message, 'helo:insight-answer')) return;
      this.#waiting.get(message.request)?.(message);
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
    if (this.#waiting.size >= MAX_WAITING) {
      // Counted as unanswered: the primary is this far behind.
      return Promise.reject(new TimeoutError('too many questions wait for the cluster primary'));
    }
    const request = this.#nextRequest++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiting.delete(request);
        reject(new ProcessError('the cluster primary did not answer'));
      }, ANSWER_TIMEOUT_MS);
      this.#waiting.set(request, (answer) => {
        clearTimeout(timer);
        this.#waiting.delete(request);
        if (answer.error === undefined) resolve(answer.answer);
        else reject(new ProcessError(answer.error));
      });
      const sent = sendIfConnected(this.#primary, {
        type: 'helo:insight-request',
        request,
        question,
      } satisfies InsightRequest);
      if (!sent)
        this.#waiting.get(request)?.({ type: 'helo:insight-answer', request, error: 'no primary' });
    });
  }
}
