/** The arithmetic of npm run bench:scaling (bench/scaling-report.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  busiest,
  type ComponentCpu,
  cpuTable,
  type Load,
  machineBusyTicks,
  type Measurement,
  median,
  parseProcStat,
  perOperationTable,
  type Setup,
  summarize,
  throughputTable,
} from '../../bench/scaling-report.js';

const cpu = (values: Partial<ComponentCpu>): ComponentCpu => ({
  helo: 0,
  haproxy: 0,
  postgres: 0,
  generator: 0,
  driver: 0,
  other: 0,
  ...values,
});

const run = (
  setup: Setup,
  load: Load,
  throughput: number,
  cpuSeconds: Partial<ComponentCpu> = {},
): Measurement => ({
  setup,
  load,
  repetition: 1,
  throughput,
  operations: throughput * 2,
  wallSeconds: 2,
  cpuSeconds: cpu(cpuSeconds),
  commits: throughput / 10,
  committedRecords: throughput,
  problems: 0,
});

describe('bench:scaling report', () => {
  it('reads the CPU fields of /proc/PID/stat past a command name with spaces and parentheses', () => {
    // Fields: pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
    //         utime stime cutime cstime ...
    const line = '4242 (node (x) y) S 17 4242 4242 0 -1 4194304 10 0 0 0 150 25 7 3 20 0 11 0';
    assert.deepEqual(parseProcStat(line), { ppid: 17, own: 175, children: 10 });
  });

  it('counts busy ticks of /proc/stat without idle and iowait', () => {
    const text = 'cpu  100 5 50 1000 70 3 2 1 0 0\ncpu0 50 2 25 500 35 1 1 0 0 0\n';
    assert.equal(machineBusyTicks(text), 100 + 5 + 50 + 3 + 2 + 1);
  });

  it('takes medians of odd and even counts', () => {
    assert.equal(median([3, 1, 2]), 2);
    assert.equal(median([4, 1, 3, 2]), 2.5);
    assert.ok(Number.isNaN(median([])));
  });

  it('gives each setup its median, its ratio to the direct server and CPUs busy per component', () => {
    const cells = summarize([
      run('direct', 'sessions', 1000, { helo: 1, generator: 0.5 }),
      run('direct', 'sessions', 1200, { helo: 1.2 }),
      run('direct', 'sessions', 900, { helo: 0.8 }),
      run('haproxy-2', 'sessions', 600, { helo: 0.6, haproxy: 1.4 }),
      run('haproxy-2', 'sessions', 500, { helo: 0.5, haproxy: 1.2 }),
      run('haproxy-2', 'sessions', 700, { helo: 0.7, haproxy: 1.0 }),
    ]);
    assert.equal(cells.length, 2);
    const [direct, balanced] = cells;
    assert.equal(direct!.median, 1000);
    assert.equal(direct!.overDirect, 1);
    assert.equal(balanced!.median, 600);
    assert.equal(balanced!.overDirect, 0.6);
    // CPU seconds over 2 s of wall time: the median of 0.7, 0.6, 0.5 CPUs.
    assert.equal(balanced!.cores.haproxy, 0.6);
    assert.equal(balanced!.cores.helo, 0.3);
    assert.equal(busiest(balanced!), 'haproxy');
    // HAProxy's CPU per session (warm-up included, 2 s × throughput): the median
    // of 1.4 s / 1,200, 1.2 s / 1,000 and 1.0 s / 1,400, so 1,167 µs.
    assert.equal(Math.round(balanced!.microsPerOperation.haproxy), 1167);
    assert.equal(busiest(direct!), 'helo');
    assert.equal(direct!.recordsPerCommit, 10);
    // All of ours per session: direct 1.0/2000, 1.2/2400, 0.8/1800 s (the generator's
    // 0.5 s adds to the first): median 500 µs; behind HAProxy 2.0/1200, 1.7/1000,
    // 1.7/1400 s: median 1,667 µs. By CPU, HAProxy + 2 does 0.3× the direct server.
    assert.equal(Math.round(direct!.microsAllOurs), 500);
    assert.equal(Math.round(balanced!.microsAllOurs), 1667);
    assert.equal(balanced!.cpuOverDirect.toFixed(2), '0.30');
  });

  it('prints one throughput row per setup and one CPU row per cell', () => {
    const cells = summarize([
      run('direct', 'sessions', 1000),
      run('direct', 'data', 5000),
      run('haproxy-1', 'sessions', 800),
      run('haproxy-1', 'data', 4000),
    ]);
    const table = throughputTable(cells).split('\n');
    assert.equal(table.length, 4);
    assert.match(table[2]!, /1 server, no HAProxy .*1,000 .*1\.00× .*5,000 .*1\.00×/);
    assert.match(table[3]!, /HAProxy \+ 1 server .*800 .*0\.80× .*4,000 .*0\.80×/);
    assert.equal(table[2]!.split('|').length - 2, 9, 'nine columns');
    assert.equal(cpuTable(cells).split('\n').length, 2 + 4);
    assert.equal(perOperationTable(cells).split('\n').length, 2 + 4);
  });
});
