/**
 * What one phase of a load counted. Mutable and cheap on the hot path
 * (replies by code go into a typed array), plain data at the edges: the
 * snapshot crosses thread boundaries and is what the report prints.
 */
import { CODE_SLOTS, OTHER_CODE } from './reply-expectation.js';

/** The kinds of error counted besides socket error codes (ECONNREFUSED, ECONNRESET...). */
export const ErrorKinds = Object.freeze({
  /** No reply (or no connection) within the timeout. */
  timeout: 'timeout',
  /** The server closed the connection while a reply was due, or mid-session. */
  closed: 'closed',
  /** A setup exchange (e.g. `HELO bench`) got another reply: the connection is dropped. */
  setup: 'setup',
});

export interface CountsSnapshot {
  /** Counted requests sent (setup exchanges are not counted). */
  readonly requests: number;
  /** Replies to those requests. */
  readonly replies: number;
  /** Replies by their first three bytes (`"100"`), or `"other"`. */
  readonly repliesByCode: Readonly<Record<string, number>>;
  /** Replies that were not the expected bytes, and lines that came when no reply was due. */
  readonly unexpected: number;
  /** Sessions completed (session plans only). */
  readonly sessions: number;
  /** Requests whose connection ended before their reply came. */
  readonly unanswered: number;
  /** Connection errors by kind: a socket error code, or one of ErrorKinds. */
  readonly errors: Readonly<Record<string, number>>;
}

export class LoadCounts {
  requests = 0;
  replies = 0;
  unexpected = 0;
  sessions = 0;
  unanswered = 0;
  readonly byCode = new Float64Array(CODE_SLOTS);
  readonly errors = new Map<string, number>();

  addError(kind: string): void {
    this.errors.set(kind, (this.errors.get(kind) ?? 0) + 1);
  }

  get errorCount(): number {
    let total = 0;
    for (const count of this.errors.values()) total += count;
    return total;
  }

  snapshot(): CountsSnapshot {
    const repliesByCode: Record<string, number> = {};
    this.byCode.forEach((count, code) => {
      if (count > 0) repliesByCode[codeName(code)] = count;
    });
    return {
      requests: this.requests,
      replies: this.replies,
      repliesByCode,
      unexpected: this.unexpected,
      sessions: this.sessions,
      unanswered: this.unanswered,
      errors: Object.fromEntries([...this.errors].sort(([a], [b]) => a.localeCompare(b))),
    };
  }
}

function codeName(code: number): string {
  return code === OTHER_CODE ? 'other' : String(code).padStart(3, '0');
}

export const EMPTY_COUNTS: CountsSnapshot = new LoadCounts().snapshot();

/** The sum of several snapshots (one per thread). */
export function sumCounts(snapshots: readonly CountsSnapshot[]): CountsSnapshot {
  const add = (into: Record<string, number>, from: Readonly<Record<string, number>>): void => {
    for (const [key, count] of Object.entries(from)) into[key] = (into[key] ?? 0) + count;
  };
  const repliesByCode: Record<string, number> = {};
  const errors: Record<string, number> = {};
  for (const snapshot of snapshots) {
    add(repliesByCode, snapshot.repliesByCode);
    add(errors, snapshot.errors);
  }
  const total = (
    field: 'requests' | 'replies' | 'unexpected' | 'sessions' | 'unanswered',
  ): number => snapshots.reduce((sum, snapshot) => sum + snapshot[field], 0);
  const sorted = (record: Record<string, number>): Record<string, number> =>
    Object.fromEntries(Object.entries(record).sort(([a], [b]) => a.localeCompare(b)));
  return {
    requests: total('requests'),
    replies: total('replies'),
    repliesByCode: sorted(repliesByCode),
    unexpected: total('unexpected'),
    sessions: total('sessions'),
    unanswered: total('unanswered'),
    errors: sorted(errors),
  };
}

export function errorTotal(snapshot: CountsSnapshot): number {
  return Object.values(snapshot.errors).reduce((sum, count) => sum + count, 0);
}
