/**
 * A fixed-bucket histogram as Prometheus defines one: counts per upper
 * bound, a sum and a count. Kept as plain numbers because it is updated on
 * the hot path (once per write of replies, not once per reply: `observe()`
 * takes a count), and because histograms from several processes (a
 * cluster's workers) must add up bucket by bucket.
 */

/** What crosses process boundaries and feeds `/metrics` and the dashboard. */
export interface HistogramData {
  /** Upper bounds, ascending; the +Inf bucket is implied. */
  readonly bounds: readonly number[];
  /** Observations per bucket, NOT cumulative; one more than `bounds` (+Inf last). */
  readonly counts: readonly number[];
  readonly sum: number;
  readonly count: number;
}

export class BucketHistogram {
  readonly bounds: readonly number[];
  readonly #counts: Float64Array;
  #sum = 0;
  #count = 0;

  constructor(bounds: readonly number[]) {
    this.bounds = bounds;
    this.#counts = new Float64Array(bounds.length + 1);
  }

  /** Records `times` observations of `value` (a batch of replies written together shares one). */
  observe(value: number, times = 1): void {
    const bounds = this.bounds;
    let bucket = 0;
    while (bucket < bounds.length && value > bounds[bucket]!) bucket++;
    this.#counts[bucket]! += times;
    this.#sum += value * times;
    this.#count += times;
  }

  toData(): HistogramData {
    return {
      bounds: this.bounds,
      counts: Array.from(this.#counts),
      sum: this.#sum,
      count: this.#count,
    };
  }
}

/** Adds histograms with the same bounds (a cluster's workers). */
export function addHistograms(into: HistogramData, other: HistogramData): HistogramData {
  return {
    bounds: into.bounds,
    counts: into.counts.map((count, i) => count + (other.counts[i] ?? 0)),
    sum: into.sum + other.sum,
    count: into.count + other.count,
  };
}
