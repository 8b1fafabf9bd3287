/**
 * The open-files check at start (issue 6): reading /proc/PID/limits, the
 * decision, what Node itself does to the limit, and the warning of the real
 * `helo server` started under a low `ulimit -n`.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import {
  filesNeeded,
  openFilesWarning,
  parseOpenFilesLimit,
  readOpenFilesLimit,
  RESERVED_FILES,
  suggestedLimit,
} from '../../src/server/fd-limit.js';
import { httpRequest } from '../helpers/http-client.js';
import { delay, RawClient } from '../helpers/raw-client.js';
import { startServerProcess } from '../../support/server-process.js';

const FD_LIMIT_MODULE = fileURLToPath(new URL('../../src/server/fd-limit.js', import.meta.url));
const isLinux = existsSync('/proc/self/limits');

/** A real /proc/PID/limits, as Linux 6.x prints it. */
const SAMPLE = `Limit                     Soft Limit           Hard Limit           Units     
Max cpu time              unlimited            unlimited            seconds   
Max file size             unlimited            unlimited            bytes     
Max processes             63704                63704                processes 
Max open files            1024                 524288               files     
Max locked memory         8388608              8388608              bytes     
Max msgqueue size         819200               819200               bytes     
`;

describe('open-files limit: parsing', () => {
  it('reads the soft and hard limits from a /proc/PID/limits text', () => {
    assert.deepEqual(parseOpenFilesLimit(SAMPLE), { soft: 1024, hard: 524288 });
  });

  it('reads unlimited as Infinity', () => {
    const text = SAMPLE.replace(
      /^Max open files.*$/m,
      'Max open files  unlimited  unlimited  files',
    );
    assert.deepEqual(parseOpenFilesLimit(text), { soft: Infinity, hard: Infinity });
  });

  it('returns null for a text without the row, or with values it cannot read', () => {
    assert.equal(parseOpenFilesLimit(''), null);
    assert.equal(parseOpenFilesLimit(SAMPLE.replace('Max open files', 'Max open filez')), null);
    assert.equal(parseOpenFilesLimit('Max open files   lots   1024   files\n'), null);
  });

  it('returns null when the file cannot be read (as on systems without /proc)', () => {
    assert.equal(readOpenFilesLimit('/nonexistent/limits'), null);
  });

  it('reads this process own limit', { skip: !isLinux && 'needs /proc (Linux)' }, () => {
    const limit = readOpenFilesLimit();
    assert.ok(limit !== null);
    assert.ok(limit.soft >= 1 && limit.soft <= limit.hard, JSON.stringify(limit));
    // Another reader of the same file must agree.
    const row = execFileSync('grep', ['^Max open files', `/proc/${process.pid}/limits`], {
      encoding: 'utf8',
    });
    assert.deepEqual(parseOpenFilesLimit(row), limit);
  });

  it(
    'sees the limit Node raised: soft = hard in a node process, not in its shell',
    { skip: !isLinux && 'needs /proc (Linux)' },
    () => {
      // The shell lowers its soft limit to 256 (first: the soft limit may not
      // exceed the hard one) and its hard limit to 4096;
      // `cat` inherits both, and node raises its soft limit to the hard one.
      const script =
        'ulimit -Sn 256 && ulimit -Hn 4096 && grep "^Max open files" /proc/self/limits && ' +
        `exec "$0" --input-type=module -e "$1"`;
      const printLimit =
        `import { readOpenFilesLimit } from ${JSON.stringify(FD_LIMIT_MODULE)};` +
        'console.log(JSON.stringify(readOpenFilesLimit()));';
      const [shellRow, nodeJson] = execFileSync(
        'sh',
        ['-c', script, process.execPath, printLimit],
        {
          encoding: 'utf8',
        },
      )
        .trim()
        .split('\n');
      assert.deepEqual(parseOpenFilesLimit(shellRow!), { soft: 256, hard: 4096 });
      assert.deepEqual(JSON.parse(nodeJson!), { soft: 4096, hard: 4096 });
    },
  );
});

describe('open-files limit: the decision', () => {
  const needed = filesNeeded(10_000, 1);

  it('counts the connections, the listeners and the reserve', () => {
    assert.equal(needed, 10_000 + 1 + RESERVED_FILES);
    assert.equal(filesNeeded(10_000, 4), 10_000 + 4 + RESERVED_FILES);
  });

  it('says nothing at exactly enough, warns one descriptor short', () => {
    assert.equal(openFilesWarning({ soft: needed, hard: needed }, 10_000, 1), null);
    const warning = openFilesWarning({ soft: needed - 1, hard: needed - 1 }, 10_000, 1);
    assert.ok(warning !== null);
    assert.match(warning, /^open-files limit 10064 is below --max-connections 10000 /);
  });

  it('says nothing when the limit is unknown or unlimited', () => {
    assert.equal(openFilesWarning(null, 10_000, 1), null);
    assert.equal(openFilesWarning({ soft: Infinity, hard: Infinity }, 1 << 30, 5), null);
  });

  it('looks at the soft limit, the one the process has', () => {
    assert.notEqual(openFilesWarning({ soft: 1024, hard: 1_048_576 }, 10_000, 1), null);
    assert.equal(openFilesWarning({ soft: 1_048_576, hard: 1_048_576 }, 10_000, 1), null);
  });

  it('counts every listener', () => {
    const limit = { soft: filesNeeded(1000, 1), hard: 1_000_000 };
    assert.equal(openFilesWarning(limit, 1000, 1), null);
    assert.notEqual(openFilesWarning(limit, 1000, 2), null);
  });

  it('is one line that says how many connections fit and how to raise the limit', () => {
    const warning = openFilesWarning({ soft: 1024, hard: 1024 }, 10_000, 1)!;
    assert.doesNotMatch(warning, /\n/);
    assert.match(warning, /open-files limit 1024 is below --max-connections 10000/);
    assert.match(warning, new RegExp(`beyond about ${1024 - 1 - RESERVED_FILES} `));
    assert.match(warning, /`ulimit -n 20000`/);
    assert.match(warning, /LimitNOFILE=20000/);
    assert.match(warning, /\/etc\/security\/limits\.conf/);
  });

  it('suggests twice the connections, in whole thousands, and never less than needed', () => {
    assert.equal(suggestedLimit(10_000, 1), 20_000);
    assert.equal(suggestedLimit(1, 1), 1000);
    assert.equal(suggestedLimit(12_345, 3), 25_000);
    for (const connections of [1, 10, 999, 1000, 50_000]) {
      assert.ok(suggestedLimit(connections, 5) >= filesNeeded(connections, 5));
    }
  });

  it('never reports a negative number of usable connections', () => {
    assert.match(openFilesWarning({ soft: 10, hard: 10 }, 10_000, 1)!, /beyond about 0 /);
  });
});

/**
 * Starts `bin/helo server` in a shell that lowered `ulimit -n` first, and
 * returns its stderr once it listens (and its logs have had a moment).
 */
async function serverStderrUnderLimit(openFiles: number, args: string[]): Promise<string> {
  const server = startServerProcess(['--store', 'memory:', ...args], {
    shell: `ulimit -n ${openFiles}`,
  });
  try {
    await server.listening;
    // The logs are written asynchronously: give them a moment.
    await delay(300);
  } finally {
    await server.stop();
  }
  return server.stderr();
}

describe('open-files limit: the real server', { skip: !isLinux && 'needs /proc (Linux)' }, () => {
  it('warns at start under ulimit -n 256 with --max-connections 10000', async () => {
    const stderr = await serverStderrUnderLimit(256, ['--max-connections', '10000']);
    assert.match(stderr, /open-files limit 256 is below --max-connections 10000/);
    assert.match(stderr, /ulimit -n 20000/);
  });

  it('does not warn when the limit is enough for --max-connections', async () => {
    const stderr = await serverStderrUnderLimit(256, ['--max-connections', '100']);
    assert.doesNotMatch(stderr, /open-files limit/);
  });
});

/** Opens `count` TCP connections (not waiting for them); each one ignores its errors. */
function openMany(port: number, count: number): Socket[] {
  return Array.from({ length: count }, () => {
    const socket = connect({ host: '127.0.0.1', port });
    socket.on('error', () => {});
    socket.on('data', () => {});
    return socket;
  });
}

describe('open-files limit: running out', { skip: !isLinux && 'needs /proc (Linux)' }, () => {
  it(
    'survives 400 TCP and 50 HTTP connections under ulimit -n 256, then serves again',
    { timeout: 30_000 },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'helo-emfile-'));
      const server = startServerProcess(
        ['--http-port', '0', '--store', `sqlite:${join(dir, 'db')}`],
        {
          shell: 'ulimit -n 256',
        },
      );
      const { child } = server;
      const stderr = (): string => server.stderr();
      const sockets: Socket[] = [];
      try {
        const port = await server.listening;
        const httpPort = Number((await server.untilStdout(/listening on ws:\/\/[^\s]*:(\d+)/))[1]);

        sockets.push(...openMany(port, 400), ...openMany(httpPort, 50));
        const closedEarly = sockets.map(() => false);
        sockets.forEach((socket, index) => socket.on('close', () => (closedEarly[index] = true)));
        // Long enough for the 1-second memory and CPU sampler to run twice
        // while every descriptor is taken.
        await delay(3_000);
        assert.equal(child.exitCode, null, `the server ended; stderr: ${stderr().slice(-2000)}`);
        // The limit was really reached: some connections were closed unanswered.
        assert.ok(
          closedEarly.some((closed) => closed),
          'no connection was refused: the open-files limit was not reached',
        );
        for (const socket of sockets) socket.destroy();
        await delay(500);

        const client = await RawClient.open(port);
        client.write('HELO fd-test\n');
        await client.until(() => client.text.includes('\n'), 5_000, 'the HELO reply');
        assert.match(client.text, /^100 OK/);
        client.close();
        assert.equal((await httpRequest(httpPort, '/healthz')).status, 200);
        assert.equal(child.exitCode, null, `the server ended; stderr: ${stderr().slice(-2000)}`);
      } finally {
        for (const socket of sockets) socket.destroy();
        await server.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

describe('open-files limit: fork mode', { skip: !isLinux && 'needs /proc (Linux)' }, () => {
  it(
    'a session child that cannot start (EMFILE) gives its client back, and new clients are served',
    { timeout: 40_000 },
    async () => {
      // About 21 descriptors are the fork server's own once it listens, but
      // loading its modules takes more for a moment (Node reads a module's
      // imports in parallel; 36 were needed on 2026-12-07): 48 leaves room to
      // start. Then a dozen sessions fit, and starting the next child (its
      // IPC pipe) fails with EMFILE.
      const server = startServerProcess(['--mode', 'fork', '--store', 'memory:'], {
        shell: 'ulimit -n 48',
      });
      const { child } = server;
      const stderr = (): string => server.stderr();
      const sessions: Socket[] = [];
      try {
        const port = await server.listening;
        // Raw sockets: a connection the server cannot accept is reset, maybe
        // before it is even connected.
        const sockets = openMany(port, 30);
        sessions.push(...sockets);
        const answered = sockets.map(() => false);
        const ended = sockets.map(() => false);
        sockets.forEach((socket, index) => {
          socket.on('data', (chunk: Buffer) => {
            if (chunk.toString('latin1').startsWith('100 OK')) answered[index] = true;
          });
          socket.on('close', () => (ended[index] = true));
          socket.write('HELO fork-fd\n');
        });
        // Every client is either served or let go: none is left waiting forever.
        const waitUntil = Date.now() + 15_000;
        const settled = (): boolean => sockets.every((_, index) => answered[index] || ended[index]);
        while (!settled() && Date.now() < waitUntil) await delay(50);
        const waiting = sockets.filter((_, index) => !answered[index] && !ended[index]).length;
        assert.equal(waiting, 0, `clients left waiting; stderr: ${stderr().slice(-2000)}`);
        assert.match(stderr(), /spawn \S+ EMFILE/, 'no session child failed to start');
        for (const socket of sessions) socket.destroy();
        await delay(1_000);

        const client = await RawClient.open(port);
        client.write('HELO again\nDATA x\nQUIT\n');
        await client.untilEnded(10_000);
        assert.equal(client.text, '100 OK\r\n300 DRCV\r\n200 BYE\r\n');
        assert.equal(child.exitCode, null, `the server ended; stderr: ${stderr().slice(-2000)}`);
      } finally {
        for (const socket of sessions) socket.destroy();
        await server.stop();
      }
    },
  );
});
