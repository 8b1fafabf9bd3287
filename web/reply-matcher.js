/**
 * Which reply answers which request, for the transcript's round-trip times.
 *
 * The server answers strictly in request order (protocol.md §2), so replies
 * are matched first in, first out. One line gets no reply of its own: a
 * bare `DATA`, whose reply comes after the payload line that follows it
 * (§3). So the matcher runs the one piece of the session state that
 * matters here, "the next line is a payload".
 */

/** A bare DATA: the word, any case, with only spaces or tabs around it (§2). */
const BARE_DATA = /^[ \t]*data[ \t]*$/i;

/**
 * @typedef {object} PendingRequest
 * @property {string} line what was sent (for a payload: the payload line)
 * @property {number} sentAt performance.now() when it was sent
 * @property {boolean} timedOut true once the page said it is late
 */

export class ReplyMatcher {
  /** @type {PendingRequest[]} */
  #pending = [];
  #expectsPayload = false;

  /** True when the next line sent is a payload (a bare DATA came before it). */
  get expectsPayload() {
    return this.#expectsPayload;
  }

  /** @returns {readonly PendingRequest[]} requests still waiting, oldest first */
  get pending() {
    return this.#pending;
  }

  /**
   * Records a line the page sent.
   * @param {string} line
   * @param {number} now
   */
  sent(line, now) {
    if (this.#expectsPayload) {
      this.#expectsPayload = false;
      this.#pending.push({ line, sentAt: now, timedOut: false });
    } else if (BARE_DATA.test(line)) {
      this.#expectsPayload = true;
    } else {
      this.#pending.push({ line, sentAt: now, timedOut: false });
    }
  }

  /**
   * The request a reply that just arrived answers, or null for a reply
   * nobody asked for (`408 TOUT`, `503 BUSY` at shutdown).
   * @returns {PendingRequest | null}
   */
  received() {
    return this.#pending.shift() ?? null;
  }

  /**
   * Forgets everything (the connection is gone).
   * @returns {PendingRequest[]} the requests that never got their reply
   */
  reset() {
    const unanswered = this.#pending;
    this.#pending = [];
    this.#expectsPayload = false;
    return unanswered;
  }
}
