/**
 * `helo bench` as a user runs it: the real executable in a child process,
 * against a real `helo server` child process (or a small test server of
 * known behaviour), every count checked exactly.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import type { BenchReport } from '../../src/loadgen/report.js';
import { pingServer, type TestServer } from '../loadgen/test-servers.js';
import { assertFailed, closedPort, runHelo } from '../helpers/run-cli.js';
import { type ServerProcess, spawnServer } from '../../support/server-process.js';

const BOUNDED = { timeout: 30_000 };
const CHILD_TIMEOUT_MS = 20_000;

/** `helo bench ...args --json`, which must succeed; its report. */
async function bench(args: readonly string[]): Promise<BenchReport> {
  const result = await runHelo(['bench', ...args, '--json'], { timeoutMs: CHILD_TIMEOUT_MS });
  assert.equal(result.status, 0, `exit status; stderr: ${result.stderr}`);
  // stderr is not a terminal here: no progress line, nothing at all.
  assert.equal(result.stderr, '');
  return JSON.parse(result.stdout) as BenchReport;
}

/** How many records a SQLite store holds, read with `helo store export`. */
async function storedCount(path: string): Promise<number> {
  const result = await runHelo(['store', 'export', '--store', `sqlite:${path}`], {
    timeoutMs: CHILD_TIMEOUT_MS,
  });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout.split('\n').filter((line) => line !== '').length;
}

describe('helo bench', () => {
  let directory = '';
  let server: ServerProcess | null = null;
  let testServer: TestServer | null = null;

  before(async () => {
    directory = await mkdtemp(join(tmpdir(), 'helo-bench-cli-'));
  });
  after(async () => {
    await rm(directory, { recursive: true, force: true });
  });
  afterEach(async () => {
    await server?.stop();
    server = null;
    await testServer?.close();
    testServer = null;
  });

  it('sends exactly --requests HELO and reports every 100 reply', BOUNDED, async () => {
    server = await spawnServer(['--store', 'memory:', '--log-level', 'warn']);
    const report = await bench(['--port', String(server.port), '--requests', '2000']);
    const { result } = report;
    assert.equal(result.requests, 2000);
    assert.equal(result.replies, 2000);
    assert.deepEqual(result.repliesByCode, { '100': 2000 });
    assert.equal(result.unexpected, 0);
    assert.equal(result.errorCount, 0);
    const latency = result.latencyUs;
    assert.ok(latency !== null);
    assert.equal(latency.count, 2000);
    assert.ok(latency.p50 > 0 && latency.p50 <= latency.p999 && latency.p999 <= latency.max);
    assert.equal(report.settings.connections, 50);
    assert.equal(report.settings.pipeline, 1);
    assert.equal(report.ceiling, null);
  });

  it('stores exactly the DATA it reports acknowledged, warm-up included', BOUNDED, async () => {
    const path = join(directory, 'data.db');
    server = await spawnServer(['--store', `sqlite:${path}`, '--log-level', 'warn']);
    const report = await bench([
      `tcp://127.0.0.1:${server.port}`,
      '--workload',
      'data',
      '--size',
      '64',
      '--requests',
      '500',
      '--connections',
      '8',
      '--pipeline',
      '4',
      '--warmup',
      '0.3',
    ]);
    const { result } = report;
    assert.deepEqual(result.repliesByCode, { '300': 500 });
    assert.equal(result.errorCount, 0);
    assert.ok(result.warmup.replies > 0, 'the warm-up ran');
    assert.equal(await server.stop(), 0);
    server = null;
    const acknowledged = result.repliesByCode['300']! + (result.warmup.repliesByCode['300'] ?? 0);
    assert.equal(await storedCount(path), acknowledged);
  });

  it('counts whole sessions, each one stored payload', BOUNDED, async () => {
    const path = join(directory, 'sessions.db');
    server = await spawnServer(['--store', `sqlite:${path}`, '--log-level', 'warn']);
    const report = await bench([
      '--port',
      String(server.port),
      '--workload',
      'session',
      '--requests',
      '150',
      '--connections',
      '10',
      '--warmup',
      '0',
    ]);
    const { result } = report;
    assert.equal(report.settings.kind, 'session');
    assert.equal(result.sessions, 150);
    assert.equal(result.requests, 450);
    assert.deepEqual(result.repliesByCode, { '100': 150, '200': 150, '300': 150 });
    assert.equal(result.errorCount, 0);
    assert.equal(result.sessionLatencyUs?.count, 150);
    assert.ok((result.sessionsPerSecond ?? 0) > 0);
    await server.stop();
    server = null;
    assert.equal(await storedCount(path), 150);
  });

  it('drives any line protocol: --request/--expect counts each wrong reply', BOUNDED, async () => {
    testServer = await pingServer(10);
    const report = await bench([
      '--port',
      String(testServer.port),
      '--request',
      'PING\\r\\n',
      '--expect',
      '+PONG\\r\\n',
      '--requests',
      '1000',
      '--connections',
      '4',
      '--pipeline',
      '5',
      '--warmup',
      '0',
    ]);
    assert.equal(report.settings.workload, 'request');
    assert.equal(report.result.replies, 1000);
    assert.equal(report.result.unexpected, 100);
    assert.equal(report.result.errorCount, 0);
    assert.equal(testServer.lines(), 1000);
  });

  it('runs a --script session against helo', BOUNDED, async () => {
    server = await spawnServer(['--store', 'memory:', '--log-level', 'warn']);
    const script = join(directory, 'session.txt');
    await writeFile(
      script,
      [
        '# HELO, a bare DATA and its payload line, a bad command, QUIT',
        'send HELO script\\r\\n',
        'expect 100 OK\\r\\n',
        'send DATA\\r\\n',
        'send payload line\\r\\n',
        'expect 300 DRCV\\r\\n',
        'send USER\\r\\n',
        'expect 400 BCMD\\r\\n',
        'send QUIT\\r\\n',
        'expect 200 BYE\\r\\n',
        '',
      ].join('\n'),
    );
    const report = await bench([
      '--port',
      String(server.port),
      '--script',
      script,
      '--requests',
      '40',
      '--connections',
      '4',
      '--warmup',
      '0',
    ]);
    assert.equal(report.settings.workload, 'script');
    assert.equal(report.result.sessions, 40);
    assert.deepEqual(report.result.repliesByCode, { '100': 40, '200': 40, '300': 40, '400': 40 });
    assert.equal(report.result.unexpected, 0);
  });

  it('keeps to --rate (open loop)', BOUNDED, async () => {
    testServer = await pingServer();
    const report = await bench([
      '--port',
      String(testServer.port),
      '--request',
      'PING\\r\\n',
      '--rate',
      '300',
      '--duration',
      '1',
      '--warmup',
      '0',
      '--connections',
      '3',
    ]);
    const expected = 300 * report.result.elapsedSeconds;
    assert.ok(
      Math.abs(report.result.requests - expected) <= expected * 0.1 + 10,
      `${report.result.requests} requests in ${report.result.elapsedSeconds} s at 300/s`,
    );
    assert.equal(report.settings.rate, 300);
  });

  it('measures the ceiling against the baseline server in the same run', BOUNDED, async () => {
    server = await spawnServer(['--store', 'memory:', '--log-level', 'warn']);
    const report = await bench([
      '--port',
      String(server.port),
      '--requests',
      '3000',
      '--connections',
      '10',
      '--warmup',
      '0',
      '--ceiling',
    ]);
    assert.ok(report.ceiling !== null);
    assert.deepEqual(report.ceiling.repliesByCode, { '100': 3000 });
    assert.notEqual(report.ceiling.target, report.result.target);
    assert.ok(report.ratio !== null && report.ratio > 0);
  });

  it(
    'plays any protocol on the ceiling: the baseline sends the expected replies',
    BOUNDED,
    async () => {
      testServer = await pingServer();
      const report = await bench([
        '--port',
        String(testServer.port),
        '--request',
        'PING\\r\\n',
        '--expect',
        '+PONG\\r\\n',
        '--requests',
        '2000',
        '--connections',
        '4',
        '--pipeline',
        '8',
        '--warmup',
        '0',
        '--ceiling',
      ]);
      assert.ok(report.ceiling !== null);
      assert.equal(report.ceiling.replies, 2000);
      assert.equal(report.ceiling.unexpected, 0);
      assert.equal(report.ceiling.errorCount, 0);
    },
  );

  it('prints a table for people by default', BOUNDED, async () => {
    testServer = await pingServer();
    const result = await runHelo(
      ['bench', '--port', String(testServer.port), '--request', 'PING\\r\\n', '--requests', '100'],
      { timeoutMs: CHILD_TIMEOUT_MS },
    );
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /^requests\s+100$/m);
    assert.match(result.stdout, /^replies\s+100$/m);
    assert.match(result.stdout, /^latency p99\.9\s+[0-9.]+ ms$/m);
  });

  it('reports an unreachable target on one line, exit 1', BOUNDED, async () => {
    const port = await closedPort();
    const result = await runHelo(['bench', '--port', String(port), '--duration', '1']);
    assertFailed(
      result,
      1,
      `helo bench: connection refused at 127.0.0.1:${port} — is the server running?`,
    );
  });

  it('refuses a bad command line with exit 2 before connecting', BOUNDED, async () => {
    const port = await closedPort();
    const cases: [string[], RegExp][] = [
      [['--pipeline', '0'], /--pipeline must be between 1 and 10000/],
      [['--connections', 'many'], /--connections must be a whole number/],
      [['--duration', '2', '--requests', '10'], /--duration or --requests, not both/],
      [['--workload', 'ftp'], /--workload must be one of helo, data, session/],
      [['--request', 'PING'], /--request must end with a line feed/],
      [['--request', 'PING\\q\\n'], /bad escape/],
      [['--expect', '+PONG\\r\\n'], /--expect goes with --request/],
      [['--workload', 'helo', '--script', 'x.txt'], /only one of --workload, --script/],
      [['--script', join(directory, 'missing.txt')], /cannot read --script .*ENOENT/],
      [['--rate', '0'], /--rate must be a positive number/],
      [['--size', '10'], /--size applies to the data and session workloads/],
      [['--nope'], /Unknown option '--nope'/],
      [['a:1', 'b:2'], /at most one ADDRESS/],
    ];
    for (const [args, message] of cases) {
      const result = await runHelo(['bench', '--port', String(port), ...args]);
      assertFailed(result, 2, message);
    }
  });
});
