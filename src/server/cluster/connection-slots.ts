/**
 * A server-wide `--max-connections` for a cluster, without a round trip to
 * the primary for every connection.
 *
 * With the kernel spreading accepts over the workers (cluster-server.ts
 * says why), no process sees every connection. So the primary holds the
 * limit as a pool of slots and lends them to workers in chunks: a worker
 * admits connections on its own while it has slots, asks for another chunk
 * when it runs out, and gives back what it does not need. The workers
 * together never hold more than the limit, so the limit is exact; when the
 * pool runs dry, the primary first reclaims the slots other workers are
 * not using, so a connection is refused only when the whole server is full.
 *
 * A per-IP limit needs to know every connection's address, so when
 * `--max-connections-per-ip` is on, each connection asks the primary (one
 * IPC round trip per connection: the price of that option in this mode).
 * With `--proxy-protocol` the two are asked apart (docs/PROTOCOL.md §10):
 * the connection's slot from the chunks at accept, and its client's
 * per-IP count (`ipOnly`) once the PROXY header has named the client.
 */
import { admissionKey, type Admission, type RejectReason } from '../admission.js';
import { isMessage, sendIfConnected, type IpcPeer } from '../ipc/messages.js';
import type { SlotsGranted, SlotsReclaim, SlotsRequest, SlotsReturn } from './cluster-messages.js';

/** Slots a worker asks for at a time, and keeps as spare. */
const CHUNK = 32;

interface Holder {
  held: number;
  readonly perIp: Map<string, number>;
  isReclaiming: boolean;
}

interface QueuedRequest {
  readonly worker: IpcPeer;
  readonly request: number;
  readonly want: number;
}

/** The primary's side: the limit, lent out in slots. */
export class SlotPool {
  readonly #maxPerIp: number;
  readonly #perIp = new Map<string, number>();
  readonly #holders = new Map<IpcPeer, Holder>();
  #free: number;
  #queue: QueuedRequest[] = [];
  #reclaimsOutstanding = 0;

  constructor(maxConnections: number, maxConnectionsPerIp: number) {
    this.#free = maxConnections;
    this.#maxPerIp = maxConnectionsPerIp;
  }

  /** Serves `worker`'s requests; call the returned function when the worker is gone. */
  attach(worker: IpcPeer): () => void {
    const holder: Holder = { held: 0, perIp: new Map(), isReclaiming: false };
    this.#holders.set(worker, holder);
    const workerOnMessage = (message: unknown): void => {
      if (isMessage<SlotsRequest>(message, 'helo:slots-request')) {
        this.#onRequest(worker, holder, message);
      } else if (isMessage<SlotsReturn>(message, 'helo:slots-return')) {
        this.#onReturn(holder, message);
      }
    };
    worker.on('message', workerOnMessage);
    return () => {
      worker.off('message', workerOnMessage);
      this.#holders.delete(worker);
      // A worker that is gone holds no connections any more.
      this.#free += holder.held;
      for (const [ip, count] of holder.perIp) this.#countIp(ip, -count);
      if (holder.isReclaiming) this.#reclaimsOutstanding--;
      this.#queue = this.#queue.filter((queued) => queued.worker !== worker);
      this.#serveQueue();
    };
  }

  #onRequest(worker: IpcPeer, holder: Holder, message: SlotsRequest): void {
    if (message.ip !== undefined) {
      // Per-IP mode: one connection, decided exactly, now.
      const key = admissionKey(message.ip);
      const ipOnly = message.ipOnly === true;
      let reason: RejectReason | null = null;
      if (this.#free === 0 && !ipOnly) reason = 'max-connections';
      else if ((this.#perIp.get(key) ?? 0) >= this.#maxPerIp) {
        reason = 'max-connections-per-ip';
      }
      if (reason === null) {
        if (!ipOnly) {
          this.#free--;
          holder.held++;
        }
        this.#countIp(key, 1);
        holder.perIp.set(key, (holder.perIp.get(key) ?? 0) + 1);
      }
      this.#grant(worker, message.request, reason === null ? 1 : 0, reason);
      return;
    }
    this.#queue.push({ worker, request: message.request, want: message.want });
    if (this.#free === 0 && this.#reclaimsOutstanding === 0) this.#reclaim(worker);
    this.#serveQueue();
  }

  #onReturn(holder: Holder, message: SlotsReturn): void {
    if (message.ipOnly !== true) {
      this.#free += message.count;
      holder.held -= message.count;
    }
    if (message.ip !== undefined) {
      const key = admissionKey(message.ip);
      this.#countIp(key, -message.count);
      const left = (holder.perIp.get(key) ?? 0) - message.count;
      if (left <= 0) holder.perIp.delete(key);
      else holder.perIp.set(key, left);
    }
    if (message.reclaimAnswer && holder.isReclaiming) {
      holder.isReclaiming = false;
      this.#reclaimsOutstanding--;
    }
    this.#serveQueue();
  }

  /** Asks every other worker holding slots for its spare ones. */
  #reclaim(asking: IpcPeer): void {
    for (const [worker, holder] of this.#holders) {
      if (worker === asking || holder.held === 0 || holder.isReclaiming) continue;
      const reclaim: SlotsReclaim = { type: 'helo:slots-reclaim' };
      if (sendIfConnected(worker, reclaim)) {
        holder.isReclaiming = true;
        this.#reclaimsOutstanding++;
      }
    }
  }

  /** Grants what the pool has; refuses what is left once no reclaim can bring more. */
  #serveQueue(): void {
    while (this.#queue.length > 0 && this.#free > 0) {
      const { worker, request, want } = this.#queue.shift()!;
      const granted = Math.min(want, this.#free);
      this.#free -= granted;
      this.#holders.get(worker)!.held += granted;
      this.#grant(worker, request, granted, null);
    }
    if (this.#reclaimsOutstanding > 0) return;
    for (const { worker, request } of this.#queue.splice(0)) {
      this.#grant(worker, request, 0, 'max-connections');
    }
  }

  #grant(worker: IpcPeer, request: number, granted: number, reason: RejectReason | null): void {
    const message: SlotsGranted = { type: 'helo:slots-granted', request, granted, reason };
    sendIfConnected(worker, message);
  }

  #countIp(ip: string, delta: number): void {
    const count = (this.#perIp.get(ip) ?? 0) + delta;
    if (count <= 0) this.#perIp.delete(ip);
    else this.#perIp.set(ip, count);
  }
}

/** A worker's side: admits on its own while it holds slots, asks the primary otherwise. */
export class SlotAdmission implements Admission {
  readonly #primary: IpcPeer;
  readonly #perIpMode: boolean;
  /** Slots lent to this worker, used or not. */
  #allowance = 0;
  #inUse = 0;
  #nextRequest = 1;
  /** Per-IP mode: one answer awaited per connection. */
  readonly #answers = new Map<number, (reason: RejectReason | null) => void>();
  /** Lease mode: connections waiting for the chunk being asked for. */
  #waiting: ((reason: RejectReason | null) => void)[] = [];
  #isAsking = false;

  constructor(primary: IpcPeer, maxConnectionsPerIp: number) {
    this.#primary = primary;
    this.#perIpMode = maxConnectionsPerIp > 0;
    primary.on('message', this.#primaryOnMessage);
  }

  /**
   * --proxy-protocol (docs/PROTOCOL.md §10): the per-IP count alone, asked
   * once the PROXY header names the client; this admission (made with no
   * per-IP limit) then holds only the connection's slot, taken at accept.
   */
  perIpOnly(): Admission {
    return {
      admit: (ip) => this.#ask(ip, true),
      release: (ip) =>
        this.#send({
          type: 'helo:slots-return',
          count: 1,
          ip,
          ipOnly: true,
          reclaimAnswer: false,
        } satisfies SlotsReturn),
    };
  }

  #ask(ip: string, ipOnly: boolean): Promise<RejectReason | null> {
    return new Promise((resolve) => {
      const request = this.#nextRequest++;
      this.#answers.set(request, resolve);
      this.#send({
        type: 'helo:slots-request',
        request,
        want: 1,
        ip,
        ...(ipOnly ? { ipOnly } : {}),
      } satisfies SlotsRequest);
    });
  }

  admit(ip: string): RejectReason | null | Promise<RejectReason | null> {
    if (this.#perIpMode) return this.#ask(ip, false);
    if (this.#inUse < this.#allowance) {
      this.#inUse++;
      return null;
    }
    return new Promise((resolve) => {
      this.#waiting.push(resolve);
      this.#askForSlots();
    });
  }

  release(ip: string): void {
    if (this.#perIpMode) {
      this.#send({
        type: 'helo:slots-return',
        count: 1,
        ip,
        reclaimAnswer: false,
      } satisfies SlotsReturn);
      return;
    }
    this.#inUse--;
    const spare = this.#allowance - this.#inUse;
    if (spare > 2 * CHUNK) this.#giveBack(spare - CHUNK, false);
  }

  #askForSlots(): void {
    if (this.#isAsking) return;
    this.#isAsking = true;
    const want = Math.max(CHUNK, this.#waiting.length);
    this.#send({
      type: 'helo:slots-request',
      request: this.#nextRequest++,
      want,
    } satisfies SlotsRequest);
  }

  #giveBack(count: number, reclaimAnswer: boolean): void {
    this.#allowance -= count;
    this.#send({ type: 'helo:slots-return', count, reclaimAnswer } satisfies SlotsReturn);
  }

  #send(message: SlotsRequest | SlotsReturn): void {
    // Without a primary the worker is about to exit: nothing to count against.
    sendIfConnected(this.#primary, message);
  }

  readonly #primaryOnMessage = (message: unknown): void => {
    if (isMessage<SlotsReclaim>(message, 'helo:slots-reclaim')) {
      this.#giveBack(this.#allowance - this.#inUse, true);
      return;
    }
    if (!isMessage<SlotsGranted>(message, 'helo:slots-granted')) return;
    const resolve = this.#answers.get(message.request);
    if (this.#perIpMode || resolve !== undefined) {
      this.#answers.delete(message.request);
      resolve?.(message.granted > 0 ? null : message.reason);
      return;
    }
    this.#isAsking = false;
    this.#allowance += message.granted;
    while (this.#waiting.length > 0 && this.#inUse < this.#allowance) {
      this.#inUse++;
      this.#waiting.shift()!(null);
    }
    if (this.#waiting.length === 0) return;
    if (message.granted === 0) {
      for (const resolve of this.#waiting.splice(0)) resolve(message.reason ?? 'max-connections');
    } else {
      this.#askForSlots();
    }
  };
}
