/** The report: the JSON object and the table made from it. */
import assert from 'node:assert/strict';
import { createHistogram } from 'node:perf_hooks';
import { describe, it } from 'node:test';
import { EMPTY_COUNTS } from '../../src/loadgen/load-counts.js';
import {
  benchReport,
  type BenchSettings,
  formatReport,
  runReport,
} from '../../src/loadgen/report.js';
import type { LoadResult } from '../../src/loadgen/run-load.js';

const SETTINGS: BenchSettings = {
  target: 'tcp://127.0.0.1:7777',
  workload: 'helo',
  description: 'HELO',
  kind: 'steady',
  connections: 50,
  pipeline: 1,
  threads: 1,
  durationSeconds: 2,
  requests: null,
  warmupSeconds: 1,
  rate: null,
  timeoutSeconds: 10,
};

function loadResult(
  replies: number,
  latenciesNs: number[],
  errors: Record<string, number> = {},
  generatorShare = 0.4,
): LoadResult {
  const requestLatency = createHistogram();
  for (const ns of latenciesNs) requestLatency.record(ns);
  return {
    measured: {
      ...EMPTY_COUNTS,
      requests: replies,
      replies,
      repliesByCode: { '100': replies - 1, '400': 1 },
      unexpected: 1,
      errors,
    },
    warmup: { ...EMPTY_COUNTS, requests: 7, replies: 7 },
    elapsedMs: 2000,
    requestLatency,
    sessionLatency: createHistogram(),
    threads: 1,
    generatorCpu: {
      cpuSeconds: 2 * generatorShare,
      wallSeconds: 2,
      cpus: 1,
      share: generatorShare,
    },
  };
}

describe('report', () => {
  it('computes throughput and percentiles in microseconds', () => {
    const run = runReport(
      'tcp://127.0.0.1:7777',
      'steady',
      loadResult(1000, [1000, 2000, 3000, 4000]),
    );
    assert.equal(run.requestsPerSecond, 500);
    assert.equal(run.sessionsPerSecond, null);
    assert.equal(run.errorCount, 0);
    assert.equal(run.latencyUs?.count, 4);
    assert.equal(run.latencyUs?.p50, 2);
    // HDR histograms keep 3 significant digits.
    assert.ok(Math.abs(run.latencyUs!.max - 4) <= 0.004);
  });

  it('prints the table: counts by code, errors by kind, latency, warm-up apart', () => {
    const run = runReport(
      SETTINGS.target,
      'steady',
      loadResult(1000, [250_000], { ECONNRESET: 2, timeout: 1 }),
    );
    const text = formatReport(benchReport(SETTINGS, run, null));
    assert.match(text, /^helo bench tcp:\/\/127\.0\.0\.1:7777: HELO$/m);
    assert.match(
      text,
      /^closed loop, 50 connections, pipeline 1, 1 thread; measured 2\.00 s after a 1 s warm-up$/m,
    );
    assert.match(text, /^requests\s+1,000$/m);
    assert.match(text, /^ {2}100\s+999$/m);
    assert.match(text, /^ {2}400\s+1$/m);
    assert.match(text, /^unexpected\s+1$/m);
    assert.match(text, /^errors\s+3$/m);
    assert.match(text, /^ {2}ECONNRESET\s+2$/m);
    assert.match(text, /^requests\/s\s+500$/m);
    assert.match(text, /^latency p50\s+0\.250 ms$/m);
    assert.match(text, /^warm-up \(not counted above\): 7 requests, 7 replies, 0 errors$/m);
    assert.doesNotMatch(text, /ceiling/);
  });

  it('puts the ceiling in a second column, with the ratio', () => {
    const target = runReport(SETTINGS.target, 'steady', loadResult(1000, [1000]));
    const ceiling = runReport('tcp://127.0.0.1:9', 'steady', loadResult(1600, [1000]));
    const report = benchReport(SETTINGS, target, ceiling);
    assert.equal(report.ratio, 0.625);
    const text = formatReport(report);
    assert.match(text, /^\s+target\s+ceiling$/m);
    assert.match(text, /^requests\/s\s+500\s+800$/m);
    assert.match(text, /^target\/ceiling: 0\.63 \(requests\/s\)$/m);
    assert.doesNotMatch(text, /lower bound/);
    // Within 10% of the ceiling, the report says the generator may be the limit.
    const close = formatReport(benchReport(SETTINGS, target, target));
    assert.match(close, /load generator \(or this machine\) may be/);
    // The JSON form is plain data.
    assert.deepEqual(JSON.parse(JSON.stringify(report)), report);
  });

  it('warns when the load generator used (nearly) all of its CPU', () => {
    const relaxed = formatReport(
      benchReport(SETTINGS, runReport(SETTINGS.target, 'steady', loadResult(1000, [1000])), null),
    );
    assert.doesNotMatch(relaxed, /warning/);
    const busy = runReport(SETTINGS.target, 'steady', loadResult(1000, [1000], {}, 0.97));
    const text = formatReport(benchReport(SETTINGS, busy, null));
    assert.match(
      text,
      /^warning: the load generator used 97% of its CPU while measuring tcp:\/\/127\.0\.0\.1:7777: it may be the bottleneck/m,
    );
    assert.match(text, /lower bound/);
  });
});
