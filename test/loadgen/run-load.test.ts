/**
 * The load generator against small servers of known behaviour, over real
 * sockets and real worker threads: what it counts must be exact.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, it } from 'node:test';
import type { LoadPlan } from '../../src/loadgen/load-plan.js';
import { type LoadOptions, runLoad } from '../../src/loadgen/run-load.js';
import { parseScript } from '../../src/loadgen/script.js';
import { requestPlan, workloadPlan } from '../../src/loadgen/workloads.js';
import { pingServer, sessionServer, startLineServer, type TestServer } from './test-servers.js';

const BOUNDED = { timeout: 15_000 };
const PING = requestPlan(Buffer.from('PING\r\n'), Buffer.from('+PONG\r\n'));

function options(port: number, plan: LoadPlan, extra: Partial<LoadOptions> = {}): LoadOptions {
  return {
    host: '127.0.0.1',
    port,
    plan,
    connections: 4,
    maxInFlight: 1,
    threads: 2,
    warmupMs: 0,
    durationMs: null,
    requests: 1000,
    ratePerSecond: null,
    timeoutMs: 5_000,
    ...extra,
  };
}

describe('runLoad', () => {
  const servers: TestServer[] = [];
  const start = async (server: Promise<TestServer>): Promise<TestServer> => {
    servers.push(await server);
    return servers[servers.length - 1]!;
  };
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((server) => server.close()));
  });

  it(
    'sends exactly --requests, pipelined, and counts every wrong reply as unexpected',
    BOUNDED,
    async () => {
      const server = await start(pingServer(10));
      const result = await runLoad(options(server.port, PING, { maxInFlight: 8, connections: 5 }));
      assert.equal(result.measured.requests, 1000);
      assert.equal(result.measured.replies, 1000);
      assert.equal(result.measured.unexpected, 100);
      assert.deepEqual(result.measured.repliesByCode, { other: 1000 });
      assert.deepEqual(result.measured.errors, {});
      assert.equal(result.requestLatency.count, 1000);
      assert.ok(result.requestLatency.min >= 1);
      assert.equal(server.lines(), 1000);
      assert.equal(result.threads, 2);
    },
  );

  it('reassembles replies cut across reads, multi-line ones included', BOUNDED, async () => {
    const server = await start(
      startLineServer({ reply: () => '$4\r\nPONG\r\n', splitReplies: true }),
    );
    const plan = requestPlan(Buffer.from('GET k\r\n'), Buffer.from('$4\r\nPONG\r\n'));
    const result = await runLoad(options(server.port, plan, { requests: 200, maxInFlight: 4 }));
    assert.equal(result.measured.replies, 200);
    assert.equal(result.measured.unexpected, 0);
  });

  it('counts the warm-up apart: together they are what the server answered', BOUNDED, async () => {
    const server = await start(pingServer());
    const result = await runLoad(options(server.port, PING, { warmupMs: 200, requests: 300 }));
    assert.equal(result.measured.requests, 300);
    assert.equal(result.measured.replies, 300);
    assert.ok(result.warmup.replies > 0, 'the warm-up ran');
    assert.equal(result.warmup.requests, result.warmup.replies);
    assert.equal(server.lines(), result.warmup.replies + 300);
  });

  it('runs whole sessions and reconnects after each', BOUNDED, async () => {
    const server = await start(sessionServer());
    const result = await runLoad(
      options(server.port, workloadPlan('session', 10), { requests: 60 }),
    );
    assert.equal(result.measured.sessions, 60);
    assert.equal(result.measured.requests, 180);
    assert.deepEqual(result.measured.repliesByCode, { '100': 60, '200': 60, '300': 60 });
    assert.equal(result.measured.unexpected, 0);
    assert.deepEqual(result.measured.errors, {});
    assert.equal(result.sessionLatency.count, 60);
    assert.equal(server.connections(), 60);
  });

  it(
    'runs a steady script: its setup once per connection, then the repeated steps',
    BOUNDED,
    async () => {
      const server = await start(sessionServer());
      const plan = parseScript(
        'send HELO x\\r\\n\nexpect 100 OK\\r\\n\nrepeat\nsend DATA y\\r\\n\nexpect 300 DRCV\\r\\n',
        'steady.txt',
      );
      const result = await runLoad(
        options(server.port, plan, { requests: 100, connections: 3, threads: 1 }),
      );
      assert.deepEqual(result.measured.repliesByCode, { '300': 100 });
      assert.equal(server.lines(), 103, 'one HELO per connection, not counted');
    },
  );

  it('drops a connection whose setup reply is wrong, and says why', BOUNDED, async () => {
    const server = await start(pingServer());
    const plan = parseScript(
      'send HELO\\r\\n\nexpect 100 OK\\r\\n\nrepeat\nsend PING\\r\\n\nexpect +PONG\\r\\n',
      'bad-setup.txt',
    );
    const result = await runLoad(
      options(server.port, plan, { requests: null, durationMs: 300, connections: 2, threads: 1 }),
    );
    assert.equal(result.measured.replies, 0);
    assert.ok((result.measured.errors.setup ?? 0) >= 2, JSON.stringify(result.measured.errors));
  });

  it(
    'counts a silent server as timeouts, with the requests it left unanswered',
    BOUNDED,
    async () => {
      const server = await start(startLineServer({ reply: () => null }));
      const started = performance.now();
      const result = await runLoad(
        options(server.port, PING, { requests: null, durationMs: 300, timeoutMs: 200, threads: 1 }),
      );
      assert.ok(performance.now() - started < 3_000, 'bounded by the timeout');
      assert.equal(result.measured.replies, 0);
      assert.ok((result.measured.errors.timeout ?? 0) >= 4);
      assert.equal(result.measured.unanswered, result.measured.requests);
    },
  );

  it('ends a --requests run that nothing answers for the timeout', BOUNDED, async () => {
    const server = await start(startLineServer({ reply: () => null }));
    const started = performance.now();
    const result = await runLoad(options(server.port, PING, { requests: 1000, timeoutMs: 200 }));
    assert.ok(performance.now() - started < 3_000, 'bounded by the timeout');
    assert.equal(result.measured.replies, 0);
    assert.ok((result.measured.errors.timeout ?? 0) >= 1);
  });

  it('counts a server that hangs up as errors, and goes on', BOUNDED, async () => {
    let count = 0;
    const server = net.createServer((socket) => {
      socket.on('error', () => {});
      socket.on('data', () => {
        // Every fifth read is answered by a reset instead of a reply.
        if (++count % 5 === 0) socket.resetAndDestroy();
        else socket.write('+PONG\r\n');
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    try {
      const port = (server.address() as net.AddressInfo).port;
      const result = await runLoad(
        options(port, PING, { requests: 200, connections: 2, threads: 1 }),
      );
      const errors = Object.values(result.measured.errors).reduce((a, b) => a + b, 0);
      assert.ok(errors > 0, 'errors counted');
      assert.equal(
        result.measured.unanswered,
        errors,
        'one request in flight per failed connection',
      );
      assert.equal(result.measured.replies + result.measured.unanswered, 200);
    } finally {
      server.close();
    }
  });

  it('keeps to --rate whatever the replies (open loop)', BOUNDED, async () => {
    const server = await start(pingServer());
    const result = await runLoad(
      options(server.port, PING, {
        requests: null,
        durationMs: 1000,
        ratePerSecond: 400,
        connections: 5,
        threads: 1,
      }),
    );
    const expected = (400 * result.elapsedMs) / 1000;
    assert.ok(
      Math.abs(result.measured.requests - expected) <= expected * 0.1 + 10,
      `${result.measured.requests} requests in ${result.elapsedMs} ms at 400/s`,
    );
    assert.equal(result.measured.replies, result.measured.requests);
  });

  it('stops early when aborted, and returns what it measured', BOUNDED, async () => {
    const server = await start(pingServer());
    const stop = new AbortController();
    setTimeout(() => stop.abort(), 300);
    const result = await runLoad(
      options(server.port, PING, { requests: null, durationMs: 60_000, signal: stop.signal }),
    );
    assert.ok(result.elapsedMs < 5_000);
    assert.ok(result.measured.replies > 0);
    assert.equal(result.measured.replies, result.measured.requests);
  });
});
