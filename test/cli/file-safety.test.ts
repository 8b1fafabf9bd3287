/**
 * The files helo creates are private and its socket file is handled
 * safely (docs/SECURITY.md): each attack is run against the real
 * `bin/helo server`, with another real user (`nobody`) where it matters.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import {
  chmodSync,
  linkSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  unlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { connect } from '../../src/client/client.js';
import { startServerProcess, type StartingServer } from '../../support/server-process.js';
import { assertFailed, runHelo } from '../helpers/run-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'helo-file-safety-'));
// Other users may enter it (as they may most directories a socket lives in).
chmodSync(dir, 0o755);
after(() => rmSync(dir, { recursive: true, force: true }));

const isRoot = process.getuid?.() === 0;

/** `bin/helo server ...args` under `umask`, as a shell would start it. */
function startHelo(args: readonly string[], umask: string): StartingServer {
  return startServerProcess([...args], { shell: `umask ${umask}`, leadingArgs: [] });
}

async function storePayloads(address: string, payloads: readonly string[]): Promise<void> {
  const client = await connect({ address });
  await client.helo('files');
  for (const payload of payloads) await client.data(payload);
  await client.quit();
}

/**
 * Run as `nobody`: watches `path` in a tight loop for a socket file whose
 * mode lets others in, and keeps trying to connect; reports what it saw
 * when told to stop (SIGTERM). The mode is the reliable witness: a window
 * of microseconds between bind() and chmod() is seen by lstat far more
 * often than a connect() from Node lands in it.
 */
const RACER = `
const fs = require('node:fs'), net = require('node:net');
const path = process.argv[1];
const seen = { looseModes: [], connected: 0 };
let stopping = false;
process.on('SIGTERM', () => { stopping = true; });
function tick() {
  const until = Date.now() + 5;
  while (Date.now() < until) {
    const stat = fs.lstatSync(path, { throwIfNoEntry: false });
    if (stat === undefined || !stat.isSocket()) continue;
    const mode = stat.mode & 0o777;
    if ((mode & 0o077) !== 0 && !seen.looseModes.includes(mode)) seen.looseModes.push(mode);
    break;
  }
  // A burst of connects (each one's connect() happens at once, in this turn).
  for (let i = 0; i < 20; i++) {
    const socket = net.connect(path);
    socket.on('connect', () => {
      seen.connected++;
      socket.end('HELO nobody\\r\\nDATA\\r\\nstolen\\r\\nQUIT\\r\\n');
    });
    socket.on('error', () => {});
  }
  if (stopping) process.stdout.write(JSON.stringify(seen));
  else setImmediate(tick);
}
process.stdout.write('ready\\n');
tick();
`;

describe('Unix socket', { skip: !isRoot && 'needs root to run a client as another user' }, () => {
  it('is never reachable by another user with looser permissions than --unix-mode, even with umask 000', async () => {
    const path = join(dir, 'race.sock');
    for (let run = 0; run < 5; run++) {
      const racer = spawn(
        'setpriv',
        [
          '--reuid=nobody',
          '--regid=nogroup',
          '--clear-groups',
          process.execPath,
          '-e',
          RACER,
          path,
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      let report = '';
      racer.stdout!.setEncoding('utf8').on('data', (text: string) => (report += text));
      await new Promise<void>((resolve) =>
        racer.stdout!.on('data', () => report.includes('ready') && resolve()),
      );
      const server = startHelo(
        ['--port', '0', '--store', 'memory:', '--unix', path, '--unix-mode', '600'],
        '000',
      );
      try {
        await server.listening;
        await new Promise((resolve) => setTimeout(resolve, 100));
        assert.equal(lstatSync(path).mode & 0o777, 0o600, 'the final mode');
      } finally {
        racer.kill('SIGTERM');
        await once(racer, 'close');
        assert.equal(await server.stop(), 0);
      }
      const seen = JSON.parse(report.slice(report.indexOf('\n') + 1)) as {
        looseModes: number[];
        connected: number;
      };
      assert.deepEqual(
        {
          run,
          looseModes: seen.looseModes.map((mode) => mode.toString(8)),
          connected: seen.connected,
        },
        { run, looseModes: [], connected: 0 },
        'nobody saw the socket with a looser mode, or connected',
      );
      assert.doesNotMatch(server.stderr(), /nobody/);
    }
  });
});

describe('Unix socket file at exit', () => {
  it("leaves a successor's socket in place when the first server stops", async () => {
    const path = join(dir, 'successor.sock');
    const first = startHelo(['--port', '0', '--store', 'memory:', '--unix', path], '022');
    let second: StartingServer | null = null;
    try {
      await first.listening;
      // An operator moves the old socket aside and starts a new server on the path.
      renameSync(path, `${path}.old`);
      second = startHelo(['--port', '0', '--store', 'memory:', '--unix', path], '022');
      await second.listening;
      const successor = lstatSync(path).ino;
      assert.equal(await first.stop(), 0);
      const now = lstatSync(path, { throwIfNoEntry: false });
      assert.ok(
        now?.isSocket() === true && now.ino === successor,
        "the successor's socket is there",
      );
      await storePayloads(`unix:${path}`, ['after the first server stopped']);
    } finally {
      await first.stop();
      await second?.stop();
      rmSync(`${path}.old`, { force: true });
    }
    assert.equal(
      lstatSync(path, { throwIfNoEntry: false }),
      undefined,
      'the successor removed its own',
    );
  });

  it('leaves a regular file put at the path while it ran', async () => {
    const path = join(dir, 'replaced.sock');
    const server = startHelo(['--port', '0', '--store', 'memory:', '--unix', path], '022');
    try {
      await server.listening;
      unlinkSync(path);
      writeFileSync(path, 'not a socket');
      assert.equal(await server.stop(), 0);
      assert.equal(readFileSync(path, 'utf8'), 'not a socket');
    } finally {
      await server.stop();
      rmSync(path, { force: true });
    }
  });
});

describe('Unix socket of a cluster', () => {
  it('is put in place by the primary with --unix-mode, and removed with its private directory at exit', async () => {
    const sub = mkdtempSync(join(dir, 'cluster-'));
    const path = join(sub, 'cluster.sock');
    const args = ['--port', '0', '--store', 'memory:', '--mode', 'cluster', '--workers', '2'];
    const server = startHelo([...args, '--unix', path, '--unix-mode', '600'], '000');
    try {
      await server.listening;
      assert.equal(lstatSync(path).mode & 0o777, 0o600);
      await storePayloads(`unix:${path}`, ['to a cluster']);
    } finally {
      assert.equal(await server.stop(), 0);
    }
    assert.deepEqual(readdirSync(sub), []);
  });
});

describe('SQLite store files', () => {
  for (const umask of ['000', '022']) {
    it(`are created readable and writable by the owner only (umask ${umask})`, async () => {
      const data = join(dir, `data-${umask}`);
      const db = join(data, 'helo.db');
      const server = startHelo(['--port', '0', '--store', `sqlite:${db}`], umask);
      try {
        const port = await server.listening;
        await storePayloads(`127.0.0.1:${port}`, ['one', 'two', 'three']);
        // While the server runs: SQLite deletes -wal and -shm at a clean close.
        for (const file of [db, `${db}-wal`, `${db}-shm`]) {
          const mode = statSync(file).mode & 0o777;
          assert.equal(mode & 0o077, 0, `${file} has mode ${mode.toString(8)}`);
        }
        assert.equal(statSync(data).mode & 0o777, 0o700, 'the data directory helo created');
      } finally {
        assert.equal(await server.stop(), 0);
      }
    });
  }

  it('warns at start about an existing store file other users can read, and leaves its mode', async () => {
    const db = join(dir, 'data-022', 'helo.db');
    chmodSync(db, 0o644);
    const server = startHelo(['--port', '0', '--store', `sqlite:${db}`], '022');
    try {
      await server.listening;
      assert.match(server.stderr(), /has mode 644: other users can read the records/);
      assert.equal(statSync(db).mode & 0o777, 0o644);
    } finally {
      assert.equal(await server.stop(), 0);
    }
  });

  it('refuses a store file with more than one hard link, on either link, in one line', async () => {
    const db = join(dir, 'data-000', 'helo.db');
    const link = join(dir, 'data-000', 'link.db');
    linkSync(db, link);
    try {
      for (const path of [db, link]) {
        const result = await runHelo(['server', '--port', '0', '--store', `sqlite:${path}`]);
        assertFailed(
          result,
          1,
          `helo server: store ${path} has 2 hard links: SQLite cannot lock a file across hard links; use one path`,
        );
      }
      // Reading is safe: SQLite's locks only matter to writers.
      const exported = await runHelo(['store', 'export', '--store', `sqlite:${link}`]);
      assert.equal(exported.status, 0, exported.stderr);
      assert.equal(exported.stdout.trim().split('\n').length, 3);
    } finally {
      unlinkSync(link);
    }
  });
});
