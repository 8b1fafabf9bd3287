/**
 * UDP test tools: a lossy relay, a seeded drop pattern, and a raw UDP peer.
 *
 * The relay sits on 127.0.0.1 between clients and a server. Each client
 * source (address:port) gets its own socket towards the server, so the
 * server sees one peer per client source, as without the relay. Every
 * datagram, in each direction, is forwarded, dropped or delayed as the
 * test's `decide` function says, and counted.
 */
import dgram, { type RemoteInfo, type Socket } from 'node:dgram';
import { once } from 'node:events';
import { seededRandom } from '../../support/seeded-random.js';

export type Direction = 'to-server' | 'to-client';

/** What happens to one datagram. */
export type Verdict = 'forward' | 'drop' | { readonly delayMs: number };

/**
 * Decides a datagram's fate; `index` counts the datagrams of that
 * direction from 0, over all clients, in arrival order.
 */
export type Decide = (direction: Direction, index: number, datagram: Buffer) => Verdict;

export interface DirectionCounts {
  seen: number;
  forwarded: number;
  dropped: number;
  delayed: number;
}

export interface RelayOptions {
  readonly target: { readonly host: string; readonly port: number };
  /** Default: forward everything. */
  readonly decide?: Decide;
}

export class LossyRelay {
  readonly counts: Record<Direction, DirectionCounts> = {
    'to-server': { seen: 0, forwarded: 0, dropped: 0, delayed: 0 },
    'to-client': { seen: 0, forwarded: 0, dropped: 0, delayed: 0 },
  };
  /** Every datagram that reached the server through the relay, in order. */
  readonly delivered: Buffer[] = [];
  readonly #front: Socket;
  readonly #target: RelayOptions['target'];
  readonly #backs = new Map<string, Socket>();
  readonly #timers = new Set<NodeJS.Timeout>();
  #decide: Decide;
  #isClosed = false;

  private constructor(front: Socket, options: RelayOptions) {
    this.#front = front;
    this.#target = options.target;
    this.#decide = options.decide ?? (() => 'forward');
    front.on('message', (datagram, client) => this.#fromClient(datagram, client));
    front.on('error', () => {});
  }

  static async start(options: RelayOptions): Promise<LossyRelay> {
    const front = dgram.createSocket('udp4');
    front.bind(0, '127.0.0.1');
    await once(front, 'listening');
    return new LossyRelay(front, options);
  }

  get port(): number {
    return this.#front.address().port;
  }

  /** Replaces the drop pattern from now on (counts go on). */
  set decide(decide: Decide) {
    this.#decide = decide;
  }

  async close(): Promise<void> {
    if (this.#isClosed) return;
    this.#isClosed = true;
    for (const timer of this.#timers) clearTimeout(timer);
    const sockets = [this.#front, ...this.#backs.values()];
    await Promise.all(
      sockets.map((socket) => new Promise<void>((resolve) => socket.close(() => resolve()))),
    );
  }

  #fromClient(datagram: Buffer, client: RemoteInfo): void {
    const key = `${client.address}:${client.port}`;
    let back = this.#backs.get(key);
    if (back === undefined) {
      back = dgram.createSocket('udp4');
      back.on('error', () => {});
      back.on('message', (reply) => this.#pass('to-client', reply, client.port, client.address));
      this.#backs.set(key, back);
    }
    const toServer = back;
    this.#pass('to-server', datagram, this.#target.port, this.#target.host, toServer);
  }

  #pass(direction: Direction, datagram: Buffer, port: number, host: string, via?: Socket): void {
    const counts = this.counts[direction];
    const verdict = this.#decide(direction, counts.seen++, datagram);
    const socket = via ?? this.#front;
    const forward = (): void => {
      if (this.#isClosed) return;
      counts.forwarded++;
      if (direction === 'to-server') this.delivered.push(Buffer.from(datagram));
      socket.send(datagram, port, host);
    };
    if (verdict === 'drop') {
      counts.dropped++;
    } else if (verdict === 'forward') {
      forward();
    } else {
      counts.delayed++;
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        forward();
      }, verdict.delayMs);
      this.#timers.add(timer);
    }
  }
}

/** Drops each datagram, both directions, with probability `rate`, from a seeded PRNG. */
export function seededDrops(seed: number, rate: number): Decide {
  const random = seededRandom(seed);
  return () => (random() < rate ? 'drop' : 'forward');
}

/** A raw UDP socket for tests: sends exact bytes, collects exact replies. */
export class UdpPeer {
  readonly socket: Socket;
  readonly received: Buffer[] = [];
  #read = 0;
  #waiters: (() => void)[] = [];

  private constructor(socket: Socket) {
    this.socket = socket;
    socket.on('message', (datagram) => {
      this.received.push(datagram);
      const waiters = this.#waiters;
      this.#waiters = [];
      for (const wake of waiters) wake();
    });
    socket.on('error', () => {});
  }

  static async open(host = '127.0.0.1'): Promise<UdpPeer> {
    const socket = dgram.createSocket(host.includes(':') ? 'udp6' : 'udp4');
    socket.bind(0, host);
    await once(socket, 'listening');
    return new UdpPeer(socket);
  }

  get port(): number {
    return this.socket.address().port;
  }

  send(datagram: Buffer | string, port: number, host = '127.0.0.1'): Promise<void> {
    const bytes = typeof datagram === 'string' ? Buffer.from(datagram, 'latin1') : datagram;
    return new Promise((resolve, reject) => {
      this.socket.send(bytes, port, host, (error) => (error ? reject(error) : resolve()));
    });
  }

  /** The next datagram not yet read, or null if none comes within `timeoutMs`. */
  async next(timeoutMs = 2_000): Promise<Buffer | null> {
    const deadline = Date.now() + timeoutMs;
    while (this.#read >= this.received.length) {
      const left = deadline - Date.now();
      if (left <= 0) return null;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    return this.received[this.#read++]!;
  }

  /** Sends one datagram and returns its reply as latin1 text, or null if none comes in time. */
  async request(
    datagram: Buffer | string,
    port: number,
    timeoutMs = 2_000,
    host = '127.0.0.1',
  ): Promise<string | null> {
    await this.send(datagram, port, host);
    return (await this.next(timeoutMs))?.toString('latin1') ?? null;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.socket.close(() => resolve()));
  }
}
