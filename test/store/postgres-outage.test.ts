/**
 * A real `helo server --store postgres://…` under load while its database
 * crashes (`pg_ctl stop -m immediate`) and comes back: DATA gets 500 FAIL
 * promptly, everything else is served, /readyz says 503, service resumes by
 * itself, and afterwards every payload answered 300 DRCV is stored exactly
 * once and none answered 500 FAIL is stored (docs/STORES.md).
 */
import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { after, before, test } from 'node:test';
import { freePort, startPostgres, type PostgresCluster } from '../../support/postgres.js';
import { spawnServer, type ServerProcess } from '../../support/server-process.js';
import { httpRequest } from '../helpers/http-client.js';

let cluster: PostgresCluster;
let server: ServerProcess | undefined;

before(async () => {
  cluster = await startPostgres();
});

after(async () => {
  await server?.stop();
  await cluster?.destroy();
});

const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** One connection, one request in flight: sends a line, resolves with the reply line. */
class LineClient {
  readonly #socket: Socket;
  #buffer = '';
  #waiting: ((line: string) => void) | undefined;
  #failed: ((error: Error) => void) | undefined;

  constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('error', (error) => this.#failed?.(error));
    socket.setEncoding('utf8').on('data', (text: string) => {
      this.#buffer += text;
      const end = this.#buffer.indexOf('\r\n');
      if (end >= 0 && this.#waiting) {
        const line = this.#buffer.slice(0, end);
        this.#buffer = this.#buffer.slice(end + 2);
        const waiting = this.#waiting;
        this.#waiting = undefined;
        waiting(line);
      }
    });
  }

  static async open(port: number): Promise<LineClient> {
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    return new LineClient(socket);
  }

  request(line: string): Promise<string> {
    return new Promise((resolve, reject) => {
      this.#waiting = resolve;
      this.#failed = reject;
      this.#socket.write(`${line}\r\n`);
    });
  }

  close(): void {
    this.#socket.destroy();
  }
}

test('a database crash mid-load: 500 FAIL promptly, 503 not ready, then service resumes; exactly once', async () => {
  const url = await cluster.createDatabase();
  const database = new URL(url).pathname.slice(1);
  const httpPort = await freePort();
  server = await spawnServer(['--store', url, '--http-port', String(httpPort)]);
  const replies = new Map<string, string>();
  let slowestFailMs = 0;
  let running = true;
  const clients = await Promise.all(Array.from({ length: 4 }, () => LineClient.open(server!.port)));
  const load = clients.map(async (client, index) => {
    for (let n = 0; running; n += 1) {
      const payload = `c${index}-${n}`;
      const started = Date.now();
      const reply = await client.request(`DATA ${payload}`);
      replies.set(payload, reply);
      if (reply.startsWith('500')) {
        slowestFailMs = Math.max(slowestFailMs, Date.now() - started);
        await delay(20); // A client that backs off a little, as a real one would.
      }
    }
  });
  const count = (code: string) => [...replies.values()].filter((r) => r.startsWith(code)).length;
  try {
    await delay(800);
    assert.ok(count('300') > 0, 'stored before the crash');
    assert.equal((await httpRequest(httpPort, '/readyz')).status, 200);

    await cluster.stop('immediate');
    const crashedAt = Date.now();
    let readyz = 0;
    while (Date.now() - crashedAt < 2500) {
      readyz = (await httpRequest(httpPort, '/readyz')).status;
      if (readyz === 503) break;
      await delay(100);
    }
    assert.equal(readyz, 503, '/readyz while the database is down');
    // The commit in flight at the crash is retried for the window (2 s), then answered.
    while (count('500') < 20 && Date.now() - crashedAt < 5000) await delay(50);
    assert.ok(count('500') >= 20, 'DATA answered 500 FAIL while the database is down');
    const greeter = await LineClient.open(server.port);
    assert.equal(await greeter.request('HELO during outage'), '100 OK', 'HELO still served');
    greeter.close();

    await cluster.start();
    const restartedAt = Date.now();
    const storedBefore = count('300');
    while (count('300') < storedBefore + 50 && Date.now() - restartedAt < 15_000) await delay(100);
    assert.ok(count('300') >= storedBefore + 50, 'service resumed by itself');
    let ready = 0;
    while (Date.now() - restartedAt < 15_000) {
      ready = (await httpRequest(httpPort, '/readyz')).status;
      if (ready === 200) break;
      await delay(100);
    }
    assert.equal(ready, 200, '/readyz ready again');
    await delay(300);
  } finally {
    running = false;
    await Promise.all(load);
    for (const client of clients) client.close();
  }
  assert.equal(server.child.exitCode, null, 'the server never exited');
  const metrics = (await httpRequest(httpPort, '/metrics')).body;
  const inDoubt = Number(/^helo_store_in_doubt_total (\d+)/m.exec(metrics)?.[1] ?? NaN);

  const rows = await cluster.query<{ payload: Buffer }>(database, 'SELECT payload FROM records');
  const stored = new Map<string, number>();
  for (const row of rows) {
    const payload = row.payload.toString();
    stored.set(payload, (stored.get(payload) ?? 0) + 1);
  }
  let lost = 0;
  let duplicated = 0;
  let failedButStored = 0;
  for (const [payload, reply] of replies) {
    const times = stored.get(payload) ?? 0;
    if (reply.startsWith('300')) {
      if (times === 0) lost += 1;
      if (times > 1) duplicated += 1;
    } else if (times > 0) {
      failedButStored += 1;
    }
  }
  const figures = {
    acknowledged: count('300'),
    failed: count('500'),
    inDoubt,
    lost,
    duplicated,
    failedButStored,
    slowestFailMs,
  };
  console.log(`# outage figures ${JSON.stringify(figures)}`);
  assert.equal(count('300') + count('500'), replies.size, 'every reply was 300 or 500');
  assert.equal(lost, 0, 'no acknowledged payload lost');
  assert.equal(duplicated, 0, 'no acknowledged payload stored twice');
  assert.equal(failedButStored, 0, 'no 500 FAIL payload stored');
  assert.ok(slowestFailMs < 6000, `500 FAIL within a few seconds (slowest ${slowestFailMs} ms)`);
  assert.ok(Number.isInteger(inDoubt), 'helo_store_in_doubt_total exposed');
});

test('two servers on one database: every payload of both stored once, ids unique', async () => {
  const url = await cluster.createDatabase();
  const database = new URL(url).pathname.slice(1);
  const servers = await Promise.all([spawnServer(['--store', url]), spawnServer(['--store', url])]);
  try {
    const sent: string[] = [];
    await Promise.all(
      servers.flatMap((each, which) =>
        Array.from({ length: 3 }, async (_, index) => {
          const client = await LineClient.open(each.port);
          for (let n = 0; n < 100; n += 1) {
            const payload = `s${which}-c${index}-${n}`;
            sent.push(payload);
            assert.equal(await client.request(`DATA ${payload}`), '300 DRCV');
          }
          client.close();
        }),
      ),
    );
    const rows = await cluster.query<{ id: string; payload: Buffer }>(
      database,
      'SELECT id, payload FROM records',
    );
    assert.equal(rows.length, sent.length);
    assert.equal(new Set(rows.map((row) => row.id)).size, rows.length, 'ids unique');
    assert.deepEqual(rows.map((row) => row.payload.toString()).sort(), [...sent].sort());
  } finally {
    await Promise.all(servers.map((each) => each.stop()));
  }
});
