/**
 * `/events`: the dashboard's live feed, as Server-Sent Events. One event
 * named `snapshot` at once, then one a second, whatever the number of open
 * dashboards: they all share one timer and one snapshot per tick, and the
 * timer runs only while someone is watching. The browser's EventSource
 * reconnects by itself if the stream breaks.
 *
 * A dashboard that does not read would hold its place forever: once more
 * than a few snapshots wait unsent for it, it is cut off; and when every
 * place is taken, the oldest subscriber gives way to a new one, so that no
 * set of connections can lock every dashboard out (docs/SECURITY.md).
 */
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Insight } from '../observe/observatory.js';

/** Dashboards one server feeds at most (each holds a connection open). */
const MAX_SUBSCRIBERS = 64;
/** Snapshots that may wait unsent for a subscriber before it is cut off. */
const MAX_UNSENT_SNAPSHOTS = 4;

export class EventsStream {
  readonly #insight: Insight;
  readonly #logger: Logger;
  readonly #everyMs: number;
  readonly #onCutOff: () => void;
  /** Oldest first (a Set keeps insertion order). */
  readonly #subscribers = new Set<ServerResponse>();
  #timer: NodeJS.Timeout | null = null;

  constructor(insight: Insight, logger: Logger, everyMs = 1_000, onCutOff: () => void = () => {}) {
    this.#insight = insight;
    this.#logger = logger;
    this.#everyMs = everyMs;
    this.#onCutOff = onCutOff;
  }

  /** Starts streaming to this response (a GET on `/events`). */
  subscribe(response: ServerResponse): void {
    const oldest = this.#subscribers.values().next();
    if (this.#subscribers.size >= MAX_SUBSCRIBERS && oldest.done !== true) {
      this.#cutOff(oldest.value);
    }
    response.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache, no-transform',
      connection: 'keep-alive',
      // Proxies such as nginx would otherwise buffer the stream.
      'x-accel-buffering': 'no',
    });
    // A reconnecting EventSource waits this long (ms).
    response.write('retry: 2000\n\n');
    // The feed is quiet between snapshots: the port's idle timeout is not for it
    // (a subscriber that stops reading is cut off below instead).
    response.socket?.setTimeout(0);
    this.#subscribers.add(response);
    response.on('close', () => {
      this.#subscribers.delete(response);
      if (this.#subscribers.size === 0) this.#stop();
    });
    void this.#send([response]);
    this.#timer ??= setInterval(() => void this.#send([...this.#subscribers]), this.#everyMs);
  }

  /** Ends every stream (server shutdown), so the HTTP server can close. */
  closeAll(): void {
    this.#stop();
    for (const response of this.#subscribers) response.end();
    this.#subscribers.clear();
  }

  #cutOff(response: ServerResponse): void {
    this.#subscribers.delete(response);
    this.#onCutOff();
    response.destroy();
  }

  #stop(): void {
    if (this.#timer !== null) clearInterval(this.#timer);
    this.#timer = null;
  }

  async #send(to: readonly ServerResponse[]): Promise<void> {
    if (to.length === 0) return;
    let event: string;
    try {
      event = `event: snapshot\ndata: ${JSON.stringify(await this.#insight.snapshot())}\n\n`;
    } catch (error) {
      this.#logger.debug({ err: String(error) }, 'dashboard snapshot not available');
      return;
    }
    const bound = MAX_UNSENT_SNAPSHOTS * Buffer.byteLength(event);
    for (const response of to) {
      if (response.writableEnded || !this.#subscribers.has(response)) continue;
      response.write(event);
      if (response.writableLength > bound) this.#cutOff(response);
    }
  }
}
