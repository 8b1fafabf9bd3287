/**
 * The exercise's own client behaviour against the real `helo server`
 * process (docs/PROTOCOL.md §9): one send() per command with no newline, one
 * recv() per reply, written in Python as the lab writes it
 * (test/fixtures/lab_client.py). Started as `npm start` starts it, it
 * completes; started as plain `helo server`, it hangs and the server says why.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { openStoreForReading } from '../../src/store/open-store.js';
import { REPO_ROOT, spawnServer } from '../../support/server-process.js';
import { npmStartFlags } from '../helpers/npm-start.js';
import { RawClient } from '../helpers/raw-client.js';
import { runHelo } from '../helpers/run-cli.js';

const LAB_CLIENT = join(REPO_ROOT, 'test/fixtures/lab_client.py');
const hasPython = spawnSync('python3', ['--version']).status === 0;

function runLabClient(
  port: number,
  payloads: string[],
  timeoutSeconds: number,
): Promise<{ lines: string[]; failed: boolean }> {
  return new Promise((resolve) => {
    execFile(
      'python3',
      [LAB_CLIENT, '127.0.0.1', String(port), ...payloads],
      { env: { ...process.env, LAB_CLIENT_TIMEOUT: String(timeoutSeconds) }, timeout: 15_000 },
      (error, stdout) => resolve({ lines: stdout.split('\n').filter(Boolean), failed: !!error }),
    );
  });
}

describe(
  'the lab client (Python, no newlines, one recv per reply)',
  { skip: !hasPython && 'python3 is not installed' },
  () => {
    let tempDir = '';
    before(async () => {
      tempDir = await mkdtemp(join(tmpdir(), 'helo-lab-'));
    });
    after(async () => {
      await rm(tempDir, { recursive: true, force: true });
    });

    it('completes HELO, DATA (an empty payload too), an unknown command and QUIT against npm start', async () => {
      const flags = await npmStartFlags();
      assert.ok(
        flags.includes('--unterminated-after-ms') && flags.includes('--telnet'),
        flags.join(' '),
      );
      const storeUrl = `sqlite:${join(tempDir, 'lab.db')}`;
      const server = await spawnServer(['--store', storeUrl, ...flags]);
      let result;
      try {
        result = await runLabClient(server.port, ['Hello world', ''], 5);
      } finally {
        assert.equal(await server.stop(), 0);
      }
      assert.deepEqual(result.lines, ['100 OK', '300 DRCV', '300 DRCV', '400 BCMD', '200 BYE']);
      assert.equal(result.failed, false);
      const store = await openStoreForReading(storeUrl);
      try {
        const payloads = (await store.read(0, 10)).map((record) => record.payload.toString('utf8'));
        assert.deepEqual(payloads, ['Hello world', '']);
      } finally {
        await store.close();
      }
    });

    it('hangs against plain helo server, which logs one warning naming the option', async () => {
      const server = await spawnServer(['--store', 'memory:']);
      let result;
      try {
        result = await runLabClient(server.port, ['x'], 3);
      } finally {
        await server.stop();
      }
      assert.equal(result.failed, true, 'the client timed out waiting for its first reply');
      assert.deepEqual(result.lines, []);
      const logLines = server.stderr().split('\n').filter(Boolean);
      const warnings = logLines.filter((line) => line.includes('"level":40'));
      assert.equal(warnings.length, 1, server.stderr());
      assert.match(warnings[0]!, /--unterminated-after-ms 100/);
      // The client then gave up and closed: its partial line is dropped, said in one line.
      assert.ok(
        logLines.some((line) => line.includes('"droppedBytes":4')),
        server.stderr(),
      );
    });
  },
);

describe('helo server --telnet (process)', () => {
  it('reads HELO_TELNET and answers a Ctrl-C with WONT TIMING-MARK', async () => {
    const server = await spawnServer(['--store', 'memory:'], { env: { HELO_TELNET: '1' } });
    try {
      const client = await RawClient.open(server.port);
      client.write(Buffer.from([0xff, 0xf4, 0xff, 0xfd, 0x06]));
      client.write('HELO\r\n');
      await client.untilBytes(3 + 8);
      assert.equal(client.text, '\xff\xfc\x06100 OK\r\n');
      client.close();
    } finally {
      await server.stop();
    }
  });

  it('lists --telnet in its help', async () => {
    const result = await runHelo(['server', '--help']);
    assert.match(result.stdout, /--telnet\s+take telnet's[^[]*\[HELO_TELNET\]/);
  });
});
