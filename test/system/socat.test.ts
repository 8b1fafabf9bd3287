/**
 * inetd mode under `socat` (docs/TRANSPORTS.md, "Socket activation and
 * inetd mode"): socat accepts each connection and starts
 * `helo server --stdio` on it, as inetd would; each session is served on
 * stdin/stdout and its payloads land in the shared SQLite store.
 *
 * `socat` is a Debian package a fresh machine lacks, so this is
 * `npm run test:system` (CI installs it), not `npm test`; without socat the
 * test is skipped with a message.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { openStoreForReading } from '../../src/store/open-store.js';
import { HELO_BIN, REPO_ROOT } from '../../support/server-process.js';
import { RawClient, delay } from '../helpers/raw-client.js';

const hasSocat = spawnSync('which', ['socat']).status === 0;
const skip = !hasSocat && 'socat not installed (apt-get install socat); the socat test is skipped';
if (skip) console.log(skip);

/** A port free a moment ago on 127.0.0.1. */
async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, 'close');
  return port;
}

describe('helo server --stdio under socat (system)', { skip }, () => {
  let dir = '';
  after(async () => {
    if (dir !== '') await rm(dir, { recursive: true, force: true });
  });

  it('serves each connection socat accepts, into one store', { timeout: 30_000 }, async () => {
    dir = await mkdtemp(join(tmpdir(), 'helo-socat-'));
    const store = `sqlite:${join(dir, 'db')}`;
    const port = await freePort();
    // socat splits an address at every ':', so the store comes through the
    // environment (HELO_STORE, as every flag can), not the command line.
    const helo = `${process.execPath} ${HELO_BIN} server --stdio`;
    const socat = spawn(
      'socat',
      [`TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`, `EXEC:${helo}`],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, HELO_STORE: store },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    let stderr = '';
    socat.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    try {
      for (const name of ['first', 'second']) {
        let client: RawClient | null = null;
        const deadline = Date.now() + 5_000;
        while (client === null) {
          client = await RawClient.open(port).catch(() => null);
          if (client === null) {
            assert.ok(Date.now() < deadline, `socat did not listen; stderr: ${stderr}`);
            await delay(50);
          }
        }
        client.write(`HELO ${name}\r\nDATA from ${name}\r\nQUIT\r\n`);
        await client.untilEnded(10_000);
        assert.equal(client.text, '100 OK\r\n300 DRCV\r\n200 BYE\r\n', stderr);
      }
    } finally {
      socat.kill('SIGTERM');
      await once(socat, 'exit');
    }
    const records = await openStoreForReading(store);
    try {
      const stored = (await records.read(0, 10)).map((record) => [
        record.name,
        record.payload.toString('latin1'),
      ]);
      assert.deepEqual(stored, [
        ['first', 'from first'],
        ['second', 'from second'],
      ]);
    } finally {
      await records.close();
    }
  });
});
