/**
 * The deployment of deploy/haproxy/ end to end, with real processes on
 * loopback: a private PostgreSQL (support/postgres.ts), three
 * `helo server --proxy-protocol` sharing it, and HAProxy in front with
 * deploy/haproxy/haproxy.cfg (support/haproxy.ts). Clients connect to
 * HAProxy only; the database is the judge (test/deploy/ledger.ts).
 *
 * HAProxy is a Debian package a fresh machine lacks, so this is
 * `npm run test:deploy` (.ci/run installs it), not `npm test`; without
 * `haproxy` the tests are skipped with a message.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { startPostgres, type PostgresCluster } from '../../support/postgres.js';
import {
  HAPROXY_CONFIG,
  HAPROXY_SLOTS,
  backendName,
  haproxyPath,
  startBackendServer,
  startHaproxy,
  type BackendServer,
  type Haproxy,
} from '../../support/haproxy.js';
import { Ledger, LineSession, SessionCut, persistentClient, tally } from './ledger.js';

const skip =
  haproxyPath() === null &&
  'haproxy not installed (apt-get install haproxy); the deployment tests are skipped';
if (skip) console.log(skip);

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface Deployment {
  readonly database: string;
  readonly servers: BackendServer[];
  readonly haproxy: Haproxy;
  stop(): Promise<void>;
}

/** Stored rows, payload as text. */
interface Row {
  readonly payload: string;
  readonly peer: string;
  readonly proxy: string | null;
}

describe('deploy/haproxy/haproxy.cfg', { skip }, () => {
  it('is valid for haproxy -c with no server, one, and every slot filled', () => {
    for (const count of [0, 1, HAPROXY_SLOTS]) {
      const env: NodeJS.ProcessEnv = { ...process.env };
      for (let slot = 1; slot <= count; slot += 1) {
        env[`HELO_SERVER_${slot}`] = `127.0.0.1:${7000 + slot}`;
      }
      const checked = spawnSync(haproxyPath()!, ['-c', '-f', HAPROXY_CONFIG], {
        env,
        encoding: 'utf8',
      });
      assert.equal(checked.status, 0, checked.stderr);
      // No warnings either: a warning names a setting HAProxy ignores or doubts.
      assert.doesNotMatch(checked.stderr, /WARNING|ALERT/, checked.stderr);
    }
  });
});

describe('three helo servers behind HAProxy (deploy/haproxy)', { skip }, () => {
  let cluster: PostgresCluster;
  let deployment: Deployment | undefined;

  before(async () => {
    cluster = await startPostgres();
  });
  after(async () => {
    await deployment?.stop();
    await cluster?.destroy();
  });

  async function deploy(count = 3): Promise<Deployment> {
    const url = await cluster.createDatabase();
    const servers = await Promise.all(
      Array.from({ length: count }, () => startBackendServer({ store: url })),
    );
    const haproxy = await startHaproxy(servers);
    await haproxy.waitUntilUp();
    deployment = {
      database: new URL(url).pathname.slice(1),
      servers,
      haproxy,
      async stop() {
        await haproxy.stop();
        await Promise.all(servers.map((server) => server.stop()));
        deployment = undefined;
      },
    };
    return deployment;
  }

  async function rows(database: string): Promise<Row[]> {
    const found = await cluster.query<{ payload: Buffer; peer: string; proxy: string | null }>(
      database,
      'SELECT payload, peer, proxy FROM records',
    );
    return found.map((row) => ({ ...row, payload: row.payload.toString('latin1') }));
  }

  it('200 concurrent clients: each payload stored once, peer = the client, proxy = HAProxy', async () => {
    const { database, haproxy, stop } = await deploy();
    const sessions = await Promise.all(
      Array.from({ length: 200 }, async (_, index) => {
        const session = await LineSession.open(haproxy.port);
        try {
          const replies = [
            await session.request(`HELO c${index}`),
            await session.request(`DATA p${index}`),
            await session.request('QUIT'),
          ];
          return { payload: `p${index}`, localPort: session.localPort, replies };
        } finally {
          session.close();
        }
      }),
    );
    const stored = await rows(database);
    const byPayload = new Map(stored.map((row) => [row.payload, row]));
    const servedBy = (await haproxy.states()).map((state) => state.total);
    await stop();
    let wrongPeer = 0;
    let wrongProxy = 0;
    for (const { payload, localPort, replies } of sessions) {
      assert.deepEqual(replies, ['100 OK', '300 DRCV', '200 BYE']);
      const row = byPayload.get(payload);
      if (row?.peer !== `127.0.0.1:${localPort}`) wrongPeer += 1;
      if (!/^127\.0\.0\.1:\d+$/.test(row?.proxy ?? '') || row?.proxy === row?.peer) {
        wrongProxy += 1;
      }
    }
    const figures = {
      sessions: sessions.length,
      acknowledged: sessions.length,
      stored: stored.length,
      distinctStored: byPayload.size,
      wrongPeer,
      wrongProxy,
      sessionsPerServer: servedBy,
    };
    console.log(`# deploy 200 clients ${JSON.stringify(figures)}`);
    assert.equal(stored.length, 200, 'one record per client');
    assert.equal(byPayload.size, 200, 'each payload once');
    assert.equal(wrongPeer, 0, "peer is the client's own address:port");
    assert.equal(wrongProxy, 0, "proxy is HAProxy's side");
    assert.ok(
      servedBy.every((total) => total > 0),
      `every server got clients: ${servedBy.join(',')}`,
    );
  });

  it('SIGKILL one server under load: nothing acknowledged lost or duplicated; its clients finish elsewhere', async () => {
    const { database, haproxy, servers, stop } = await deploy();
    const ledger = new Ledger();
    let reconnects = 0;
    const clients = 30;
    const payloads = 40;
    const load = Array.from({ length: clients }, (_, id) =>
      persistentClient({
        port: haproxy.port,
        id,
        payloads,
        perSession: 10,
        ledger,
        running: () => true,
        onReconnect: () => (reconnects += 1),
      }),
    );
    const deadline = Date.now() + 20_000;
    while (ledger.count('300') < 200 && Date.now() < deadline) await delay(10);
    const onKilled = (await haproxy.states()).find((state) => state.name === backendName(0));
    await servers[0]!.stop('SIGKILL');
    let timer: NodeJS.Timeout | undefined;
    const finished = await Promise.race([
      Promise.all(load),
      new Promise<number[]>((resolve) => (timer = setTimeout(() => resolve([]), 60_000))),
    ]);
    clearTimeout(timer);
    await haproxy.waitUntilDown(backendName(0));
    const counts = ledger.check((await rows(database)).map((row) => row.payload));
    await stop();
    const figures = {
      ...counts,
      sessionsOnKilledServer: onKilled?.sessions,
      reconnects,
      clientsFinished: finished.filter((done) => done === payloads).length,
    };
    console.log(`# deploy SIGKILL ${JSON.stringify(figures)}`);
    assert.equal(figures.clientsFinished, clients, 'every client finished all its payloads');
    assert.equal(counts.acknowledged, clients * payloads);
    assert.equal(counts.lost, 0, 'no acknowledged payload lost');
    assert.equal(counts.duplicated, 0, 'no attempt stored twice');
    assert.equal(counts.unknown, 0);
    assert.ok(reconnects > 0, 'the killed server had clients, and they reconnected');
  });

  /**
   * Restarts each server in turn while 12 loops open whole sessions (HELO,
   * DATA, QUIT in one write; no retry), each of which must get all three
   * replies. `drainFirst`: HAProxy is told first (runtime API, `state
   * drain`) and the SIGTERM waits until it holds no connection to that
   * server; otherwise the SIGTERM comes alone and HAProxy learns from the
   * refused connects and the failing /readyz.
   */
  async function rollingRestart(drainFirst: boolean) {
    const { database, haproxy, servers, stop } = await deploy();
    const ledger = new Ledger();
    const failures: string[] = [];
    const cutPorts: number[] = [];
    let sessions = 0;
    let running = true;
    const loops = Array.from({ length: 12 }, async (_, id) => {
      for (let n = 0; running; n += 1) {
        const payload = `r${id}-${n}#a0`;
        sessions += 1;
        ledger.record(payload, 'cut');
        const replies: string[] = [];
        let session: LineSession | null = null;
        try {
          session = await LineSession.open(haproxy.port);
          session.write(`HELO r${id}\r\nDATA ${payload}\r\nQUIT\r\n`);
          for (let reply = 0; reply < 3; reply += 1) replies.push(await session.reply());
          if (replies[1] !== undefined) ledger.record(payload, replies[1]);
          if (replies.join('|') !== '100 OK|300 DRCV|200 BYE') {
            failures.push(`replies ${replies.join('|')}`);
          }
        } catch (error) {
          if (replies[1] !== undefined) ledger.record(payload, replies[1]);
          const why = error instanceof SessionCut ? error.message : String(error);
          failures.push(`cut after [${replies.join('|')}]: ${why}`);
          if (session !== null) cutPorts.push(session.localPort);
        } finally {
          session?.close();
        }
      }
    });
    const exits: { code: number | null; ms: number }[] = [];
    try {
      await delay(500);
      for (const [index, server] of servers.entries()) {
        const name = backendName(index);
        if (drainFirst) {
          await haproxy.command(`set server helo_servers/${name} state drain`);
          await haproxy.waitUntil(`${name} drained`, (all) =>
            all.some((state) => state.name === name && state.sessions === 0),
          );
        }
        const started = Date.now();
        const code = await server.stop('SIGTERM');
        exits.push({ code, ms: Date.now() - started });
        await server.restart();
        if (drainFirst) await haproxy.command(`set server helo_servers/${name} state ready`);
        await haproxy.waitUntilUp([name]);
        await delay(300);
      }
    } finally {
      running = false;
      await Promise.all(loops);
    }
    const counts = ledger.check((await rows(database)).map((row) => row.payload));
    await stop();
    // HAProxy's log line for each cut session: its termination state says
    // who closed and when ("SD": the server side, during the data phase).
    const log = haproxy.stderr().split('\n');
    const haproxyLines = cutPorts.flatMap((port) =>
      log.filter((line) => line.includes(`127.0.0.1:${port} `)),
    );
    return {
      sessions,
      acknowledged: counts.acknowledged,
      lost: counts.lost,
      duplicated: counts.duplicated,
      unknown: counts.unknown,
      failedSessions: failures.length,
      failures: tally(failures),
      exits,
      haproxyLines,
    };
  }

  function assertRestarted(figures: Awaited<ReturnType<typeof rollingRestart>>): void {
    assert.deepEqual(
      figures.exits.map((exit) => exit.code),
      [0, 0, 0],
      'each server exited 0',
    );
    assert.ok(
      figures.exits.every((exit) => exit.ms < 10_000),
      'each exit within 10 s',
    );
    assert.equal(figures.lost, 0);
    assert.equal(figures.duplicated, 0);
    assert.equal(figures.unknown, 0);
  }

  it('rolling restart, drained in HAProxy first, then SIGTERM: zero failed sessions', async () => {
    const figures = await rollingRestart(true);
    console.log(`# deploy rolling restart (drain, SIGTERM) ${JSON.stringify(figures)}`);
    assertRestarted(figures);
    assert.equal(figures.failedSessions, 0, JSON.stringify(figures.failures));
  });

  it('rolling restart by SIGTERM alone: zero failed sessions', async () => {
    const figures = await rollingRestart(false);
    console.log(`# deploy rolling restart (SIGTERM alone) ${JSON.stringify(figures)}`);
    assertRestarted(figures);
    // /readyz turns 503 at once and each server keeps accepting until
    // HAProxy has stopped sending to it (src/server/balancer-drain.ts), so
    // no connection is left in the kernel's queue when its listener closes.
    assert.equal(figures.failedSessions, 0, JSON.stringify(figures.failures));
  });

  it('PostgreSQL restarted under load: service resumes; 0 lost, 0 duplicated, no 500 FAIL stored', async () => {
    const { database, haproxy, stop } = await deploy();
    const ledger = new Ledger();
    let running = true;
    let reconnects = 0;
    const load = Array.from({ length: 12 }, (_, id) =>
      persistentClient({
        port: haproxy.port,
        id,
        payloads: Number.MAX_SAFE_INTEGER,
        perSession: 20,
        ledger,
        running: () => running,
        backoffMs: 50,
        onReconnect: () => (reconnects += 1),
      }),
    );
    let ackedBefore = 0;
    let ackedAfter = 0;
    let outageMs = 0;
    try {
      const deadline = Date.now() + 20_000;
      while (ledger.count('300') < 200 && Date.now() < deadline) await delay(10);
      ackedBefore = ledger.count('300');
      const stoppedAt = Date.now();
      // `pg_ctl restart -m fast`, with the database away longer than the
      // store's retry window (2 s, docs/STORES.md): some DATA gets 500 FAIL.
      await cluster.stop('fast');
      await delay(2500);
      await cluster.start();
      outageMs = Date.now() - stoppedAt;
      const resumeBy = Date.now() + 30_000;
      const target = ledger.count('300') + 300;
      while (ledger.count('300') < target && Date.now() < resumeBy) await delay(20);
      ackedAfter = ledger.count('300') - ackedBefore;
    } finally {
      running = false;
      await Promise.all(load);
    }
    const counts = ledger.check((await rows(database)).map((row) => row.payload));
    await stop();
    const figures = { ...counts, sessionsCut: ledger.cuts, reconnects, ackedBefore, outageMs };
    console.log(`# deploy PostgreSQL restart ${JSON.stringify(figures)}`);
    assert.ok(ackedAfter >= 300, `service resumed (${ackedAfter} acknowledged after the stop)`);
    assert.equal(counts.lost, 0, 'no acknowledged payload lost');
    assert.equal(counts.duplicated, 0, 'no attempt stored twice');
    assert.ok(counts.failed > 0, 'some DATA answered 500 FAIL during the outage');
    assert.equal(counts.failedButStored, 0, 'no 500 FAIL payload stored');
    assert.equal(counts.unknown, 0);
  });
});
