/**
 * protocol.md §5: a server killed with SIGKILL at any moment keeps every
 * payload it acknowledged. Several clients send payloads (binary ones
 * included) as fast as they can; the server is killed mid-stream; then
 * `helo store export` must hold every acknowledged payload byte for byte.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { delay } from '../helpers/raw-client.js';
import { HELO_BIN, REPO_ROOT, spawnServer } from '../../support/server-process.js';

const CLIENTS = 6;
const PIPELINE = 8;

/** Payload i of client c: recognisable, and full of awkward bytes. */
function payloadFor(client: number, index: number): Buffer {
  return Buffer.concat([
    Buffer.from(`c${client}-${index}-`),
    Buffer.from([0x00, 0xff, 0x80, 0x0d, 0xc3, 0x28]),
    Buffer.alloc(index % 50, 0x41 + (index % 26)),
  ]);
}

/** Sends DATA lines with a few in flight; records each payload when its 300 DRCV arrives. */
async function sendUntilKilled(port: number, client: number, acked: Buffer[]): Promise<void> {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  await once(socket, 'connect');
  const inFlight: Buffer[] = [];
  let next = 0;
  let pendingText = '';
  const sendOne = (): void => {
    const payload = payloadFor(client, next++);
    inFlight.push(payload);
    socket.write(Buffer.concat([Buffer.from('DATA\r\n'), payload, Buffer.from('\r\n')]));
  };
  for (let i = 0; i < PIPELINE; i++) sendOne();
  socket.on('data', (chunk: Buffer) => {
    pendingText += chunk.toString('latin1');
    let end;
    while ((end = pendingText.indexOf('\r\n')) !== -1) {
      const reply = pendingText.slice(0, end);
      pendingText = pendingText.slice(end + 2);
      const payload = inFlight.shift()!;
      if (reply === '300 DRCV') acked.push(payload);
      sendOne();
    }
  });
  await new Promise((resolve) => socket.once('close', resolve));
}

describe('crash safety', () => {
  let dir = '';
  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('keeps every acknowledged payload, byte for byte, after SIGKILL under load', async () => {
    dir = await mkdtemp(join(tmpdir(), 'helo-crash-'));
    const store = `sqlite:${join(dir, 'helo.db')}`;
    const server = await spawnServer(['--store', store, '--log-level', 'warn']);
    const acked: Buffer[][] = Array.from({ length: CLIENTS }, () => []);
    const senders = acked.map((list, client) => sendUntilKilled(server.port, client, list));
    await delay(1_500);
    server.child.kill('SIGKILL');
    await Promise.all(senders);
    await server.stop();
    const total = acked.reduce((sum, list) => sum + list.length, 0);
    assert.ok(total > 100, `only ${total} payloads were acknowledged before the kill`);

    const exporter = spawn(process.execPath, [HELO_BIN, 'store', 'export', '--store', store], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const chunks: Buffer[] = [];
    exporter.stdout.on('data', (chunk: Buffer) => chunks.push(chunk));
    const [code] = (await once(exporter, 'exit')) as [number];
    assert.equal(code, 0);
    const stored = new Set(
      Buffer.concat(chunks)
        .toString('utf8')
        .trim()
        .split('\n')
        .map((line) => (JSON.parse(line) as { payloadBase64: string }).payloadBase64),
    );
    for (const list of acked) {
      for (const payload of list) {
        assert.ok(
          stored.has(payload.toString('base64')),
          `lost ${JSON.stringify(payload.toString('latin1'))}`,
        );
      }
    }
  });
});
