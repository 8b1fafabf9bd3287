/**
 * Requests and their answers over an IPC channel (ipc/messages.ts): the one
 * correlator the store's appends, the cluster's insight questions and its
 * counters requests share. A request carries an id; its answer carries the
 * same id back. What the helper keeps for every caller:
 *
 * - a bound on unanswered requests: past it a request fails at once, so a
 *   slow or stuck peer costs a fixed amount of memory (docs/RELIABILITY.md);
 * - an optional timeout per request;
 * - when the channel closes (the other process is gone), every unanswered
 *   request fails at once instead of waiting for an answer that cannot come;
 * - on the answering side, a bound on requests being answered at once:
 *   beyond it a request is refused with an error answer.
 *
 * Requester and answerer are always the same build, so the message shapes
 * below are free to change together.
 */
import { ProcessError } from '../../errors.js';
import { isMessage, sendIfConnected, type IpcPeer } from './messages.js';

/**
 * The two message types of one kind of request; `Req` and `Res` tie the
 * requester's and the answerer's types together.
 */
export interface RpcChannel<Req, Res> {
  readonly request: string;
  readonly response: string;
  /** Never set: only carries the types. */
  readonly types?: (body: Req) => Res;
}

export function rpcChannel<Req, Res>(request: string, response: string): RpcChannel<Req, Res> {
  return { request, response };
}

/** Requester -> answerer. */
interface RpcRequest<Req> {
  readonly type: string;
  readonly request: number;
  readonly body: Req;
}

/** Answerer -> requester: the result, or why there is none. */
interface RpcResponse<Res> {
  readonly type: string;
  readonly request: number;
  readonly result?: Res;
  readonly error?: string;
}

/** The errors a request fails with; each defaults to a `ProcessError`. */
export interface RpcErrors {
  /** `maxOutstanding` requests wait already. */
  readonly tooMany?: () => Error;
  /** No answer within the request's `timeoutMs`. */
  readonly timeout?: () => Error;
  /** The channel is closed: the other process is gone. */
  readonly gone?: () => Error;
  /** The answerer answered with an error. */
  readonly answer?: (message: string) => Error;
}

export interface RequesterOptions {
  /** Unanswered requests at most; a request past this fails at once. */
  readonly maxOutstanding: number;
  readonly errors?: RpcErrors;
  /** Called once when the channel is found closed (after the unanswered requests fail). */
  readonly onGone?: () => void;
}

interface Outstanding<Res> {
  readonly resolve: (result: Res) => void;
  readonly reject: (error: Error) => void;
  readonly timer: NodeJS.Timeout | null;
}

export class IpcRequester<Req, Res> {
  readonly #peer: IpcPeer;
  readonly #channel: RpcChannel<Req, Res>;
  readonly #options: RequesterOptions;
  readonly #outstanding = new Map<number, Outstanding<Res>>();
  #nextId = 1;
  #isGone = false;
  #isClosed = false;
  #idleWaiters: (() => void)[] = [];

  constructor(peer: IpcPeer, channel: RpcChannel<Req, Res>, options: RequesterOptions) {
    this.#peer = peer;
    this.#channel = channel;
    this.#options = options;
    peer.on('message', this.#peerOnMessage);
    peer.on('disconnect', this.#peerOnDisconnect);
  }

  /** Requests sent and not answered (nor failed) yet. */
  get outstanding(): number {
    return this.#outstanding.size;
  }

  request(body: Req, options: { readonly timeoutMs?: number } = {}): Promise<Res> {
    const errors = this.#options.errors ?? {};
    if (this.#isGone || this.#isClosed) {
      return Promise.reject(errors.gone?.() ?? new ProcessError('the other process is gone'));
    }
    if (this.#outstanding.size >= this.#options.maxOutstanding) {
      return Promise.reject(
        errors.tooMany?.() ?? new ProcessError('too many requests wait for the other process'),
      );
    }
    const id = this.#nextId++;
    return new Promise<Res>((resolve, reject) => {
      const timer =
        options.timeoutMs === undefined
          ? null
          : setTimeout(() => {
              if (!this.#forget(id)) return;
              reject(
                errors.timeout?.() ?? new ProcessError('the other process did not answer in time'),
              );
            }, options.timeoutMs);
      this.#outstanding.set(id, { resolve, reject, timer });
      const message: RpcRequest<Req> = { type: this.#channel.request, request: id, body };
      if (!sendIfConnected(this.#peer, message)) this.#goneNow();
    });
  }

  /** Resolves once no request is unanswered. */
  idle(): Promise<void> {
    if (this.#outstanding.size === 0) return Promise.resolve();
    return new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
  }

  /** Fails every unanswered request with `error`. */
  rejectAll(error: Error): void {
    const all = [...this.#outstanding.values()];
    this.#outstanding.clear();
    for (const { reject, timer } of all) {
      if (timer !== null) clearTimeout(timer);
      reject(error);
    }
    this.#noteIfIdle();
  }

  /** Stops listening to the channel; unanswered requests fail as if it had closed. */
  close(): void {
    if (this.#isClosed) return;
    this.#isClosed = true;
    this.#peer.off('message', this.#peerOnMessage);
    this.#peer.off('disconnect', this.#peerOnDisconnect);
    this.rejectAll(this.#options.errors?.gone?.() ?? new ProcessError('the other process is gone'));
  }

  /** True if `id` was unanswered (and is now forgotten). */
  #forget(id: number): boolean {
    const entry = this.#outstanding.get(id);
    if (entry === undefined) return false;
    this.#outstanding.delete(id);
    if (entry.timer !== null) clearTimeout(entry.timer);
    this.#noteIfIdle();
    return true;
  }

  #noteIfIdle(): void {
    if (this.#outstanding.size > 0) return;
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }

  #goneNow(): void {
    if (this.#isGone) return;
    this.#isGone = true;
    this.rejectAll(this.#options.errors?.gone?.() ?? new ProcessError('the other process is gone'));
    this.#options.onGone?.();
  }

  readonly #peerOnDisconnect = (): void => this.#goneNow();

  readonly #peerOnMessage = (message: unknown): void => {
    if (!isMessage<RpcResponse<Res> & { type: string }>(message, this.#channel.response)) return;
    const entry = this.#outstanding.get(message.request);
    // Unknown: answered after its timeout, or not ours.
    if (entry === undefined) return;
    this.#forget(message.request);
    if (message.error === undefined) entry.resolve(message.result as Res);
    else {
      const error = this.#options.errors?.answer?.(message.error);
      entry.reject(error ?? new ProcessError(message.error));
    }
  };
}

export interface AnswerOptions {
  /** Requests being answered at once (handlers not settled yet); beyond, refused. */
  readonly maxConcurrent: number;
  /** The error answer of a refused request. */
  readonly busy?: string;
}

/**
 * Answers `peer`'s requests of `channel` with `handler` until the returned
 * function is called. A handler that throws or rejects answers with its
 * error's message; one that returns a plain value is answered at once (and
 * never counts against `maxConcurrent`).
 */
export function answerRequests<Req, Res>(
  peer: IpcPeer,
  channel: RpcChannel<Req, Res>,
  handler: (body: Req) => Res | Promise<Res>,
  options: AnswerOptions,
): () => void {
  let active = 0;
  const peerOnMessage = (message: unknown): void => {
    if (!isMessage<RpcRequest<Req> & { type: string }>(message, channel.request)) return;
    const reply = (answer: { result: Res } | { error: string }): void => {
      const response: RpcResponse<Res> = {
        type: channel.response,
        request: message.request,
        ...answer,
      };
      // If the requester is gone there is nobody to tell.
      sendIfConnected(peer, response);
    };
    const fail = (error: unknown): void =>
      reply({ error: error instanceof Error ? error.message : String(error) });
    if (active >= options.maxConcurrent) {
      reply({ error: options.busy ?? 'too many requests at once' });
      return;
    }
    let outcome: Res | Promise<Res>;
    try {
      outcome = handler(message.body);
    } catch (error) {
      fail(error);
      return;
    }
    if (!(outcome instanceof Promise)) {
      reply({ result: outcome });
      return;
    }
    active++;
    void outcome
      .then((result) => reply({ result }), fail)
      .finally(() => {
        active--;
      });
  };
  peer.on('message', peerOnMessage);
  return () => peer.off('message', peerOnMessage);
}
