/**
 * Latencies go into node:perf_hooks HDR histograms, which take
 * integers >= 1: they are recorded in nanoseconds, and reported in
 * microseconds.
 */
import type { RecordableHistogram } from 'node:perf_hooks';

/** `ms` (a performance.now() difference) as whole nanoseconds, at least 1. */
export function toNanoseconds(ms: number): number {
  const ns = Math.round(ms * 1e6);
  return ns >= 1 ? ns : 1;
}

/** Percentiles of one histogram, in microseconds. */
export interface LatencySummary {
  readonly count: number;
  readonly mean: number;
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly p999: number;
  readonly max: number;
}

export function summarizeLatency(histogram: RecordableHistogram): LatencySummary | null {
  if (histogram.count === 0) return null;
  const us = (ns: number): number => Math.round(ns) / 1000;
  return {
    count: histogram.count,
    mean: us(histogram.mean),
    p50: us(histogram.percentile(50)),
    p90: us(histogram.percentile(90)),
    p99: us(histogram.percentile(99)),
    p999: us(histogram.percentile(99.9)),
    max: us(histogram.max),
  };
}
