/**
 * When to close the listeners of a server that a load balancer health-checks
 * through `/readyz` (deploy/haproxy/haproxy.cfg).
 *
 * Closing a listening socket resets every connection the kernel has
 * completed for it that the process has not accepted yet. Behind HAProxy
 * such a connection already carries the PROXY header and the client's first
 * bytes, so HAProxy cannot send it to another server: the client's session
 * fails. A balancer stops opening connections to a server only once its
 * health check has failed (HAProxy: `fall 2` checks, `fastinter 100ms`
 * apart). So a server that stops while something asks its `/readyz` keeps
 * its listeners open until `/readyz` has answered 503 and then no new
 * connection has come for QUIET_MS; the connections that arrive meanwhile
 * are served as any connection opened during a shutdown (docs/RELIABILITY.md).
 * A server nobody health-checks (a student's Ctrl-C) closes at once.
 */
import { setTimeout as delay } from 'node:timers/promises';
import { performance } from 'node:perf_hooks';

/** `/readyz` asked this recently (ms) before the stop: a balancer is watching. */
const WATCHED_WITHIN_MS = 5_000;
/** No new connection for this long (ms) after a 503: the balancer has let go. */
const QUIET_MS = 200;
/** The listeners close at the latest this long (ms) after the stop began. */
const LONGEST_MS = 2_000;
const LOOK_EVERY_MS = 25;

export class BalancerDrain {
  #lastAskedAt = Number.NEGATIVE_INFINITY;
  #notReadyAnswers = 0;

  /** `/readyz` was answered with this status (the HTTP port calls it). */
  readinessAnswered(status: number): void {
    this.#lastAskedAt = performance.now();
    if (status !== 200) this.#notReadyAnswers += 1;
  }

  /**
   * Resolves when the listeners may close: at once if nothing health-checks
   * this server; otherwise once a 503 went out and `arrivals()` (connections
   * accepted so far) has stood still for QUIET_MS, or after LONGEST_MS.
   * Call it once readiness already answers 503.
   */
  async untilLetGo(arrivals: () => number): Promise<void> {
    const started = performance.now();
    if (started - this.#lastAskedAt > WATCHED_WITHIN_MS) return;
    const notReadyBefore = this.#notReadyAnswers;
    let seen = arrivals();
    let quietSince = started;
    let toldAt: number | null = null;
    for (;;) {
      await delay(LOOK_EVERY_MS);
      const now = performance.now();
      if (now - started >= LONGEST_MS) return;
      if (toldAt === null && this.#notReadyAnswers > notReadyBefore) toldAt = now;
      if (arrivals() !== seen) {
        seen = arrivals();
        quietSince = now;
      } else if (toldAt !== null && now - Math.max(quietSince, toldAt) >= QUIET_MS) return;
    }
  }
}
