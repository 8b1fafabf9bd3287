/**
 * `/events`: the dashboard's live feed, as Server-Sent Events. One event
 * named `snapshot` at once, then one a second, whatever the number of open
 * dashboards: they all share one timer and one snapshot per tick, and the
 * timer runs only while someone is watching. The browser's EventSource
 * reconnects by itself if the stream breaks.
 */
import type { ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Insight } from '../observe/observatory.js';

/** Dashboards one server feeds at most; more get 503 (each holds a connection open). */
const MAX_SUBSCRIBERS = 64;

export class EventsStream {
  readonly #insight: Insight;
  readonly #logger: Logger;
  readonly #everyMs: number;
  readonly #subscribers = new Set<ServerResponse>();
  #timer: NodeJS.Timeout | null = null;

  constructor(insight: Insight, logger: Logger, everyMs = 1_000) {
    this.#insight = insight;
    this.#logger = logger;
    this.#everyMs = everyMs;
  }

  /** Starts streaming to this response (a GET on `/events`). */
  subscribe(response: ServerResponse): void {
    if (this.#subscribers.size >= MAX_SUBSCRIBERS) {
      response.writeHead(503, { 'content-type': 'text/plain; charset=utf-8', 'retry-after': '5' });
      response.end('Too many dashboards are open.\n');
      return;
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
    for (const response of to) {
      // A dashboard that does not read is skipped rather than buffered without bound.
      if (!response.writableEnded && response.writableLength < 1 << 20) response.write(event);
    }
  }
}
