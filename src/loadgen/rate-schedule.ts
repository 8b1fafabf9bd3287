/**
 * The open-loop schedule of `--rate`: unit k of a connection (a request, or
 * a session) is due at a fixed time, whether or not earlier replies came.
 * Latency is measured from that time, so a server that stalls is charged
 * for every request it delayed, not just the one it held (coordinated
 * omission, as wrk2 corrects it).
 */
export class RateSchedule {
  /** When unit 0 is due (ms, the thread's performance.now() clock). */
  readonly firstAt: number;
  readonly intervalMs: number;

  constructor(firstAt: number, intervalMs: number) {
    this.firstAt = firstAt;
    this.intervalMs = intervalMs;
  }

  /**
   * The schedule of connection `index` of `connections` when `ratePerSecond`
   * units are due in total: each connection gets an equal share, and their
   * start times are spread over one interval so that the units do not all
   * fall due at the same instants.
   */
  static forConnection(
    startAt: number,
    ratePerSecond: number,
    index: number,
    connections: number,
  ): RateSchedule {
    const intervalMs = (1000 * connections) / ratePerSecond;
    return new RateSchedule(startAt + (index * intervalMs) / connections, intervalMs);
  }

  /** When unit `unit` is due. */
  timeOf(unit: number): number {
    return this.firstAt + unit * this.intervalMs;
  }

  /** How many units are due by `now` (units 0 .. n-1). */
  dueBy(now: number): number {
    if (now < this.firstAt) return 0;
    return Math.floor((now - this.firstAt) / this.intervalMs) + 1;
  }

  /** How long until unit `unit` is due (0 when it already is). */
  delayUntil(unit: number, now: number): number {
    return Math.max(0, this.timeOf(unit) - now);
  }
}
