/**
 * docs/RELIABILITY.md, "Every buffer a peer can grow is bounded": a cluster
 * worker whose store is slow parses at most its soft limit of appends plus
 * one socket read; the reads of its other paused connections wait as bytes.
 *
 * The store is made slow for real: another process holds the SQLite write
 * lock for two seconds, so the primary's commit waits at BEGIN. Meanwhile
 * 24 clients have pipelined 8,000 tiny DATA lines each (64 KB: one socket
 * read, 8,000 requests). Parsing all of them would put well over
 * 65,536 appends in one worker, its hard limit (500 FAIL), and hundreds of
 * MB of requests in flight in the cluster; paced, every one is stored.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { readRss } from '../../support/process-rss.js';
import { spawnServer, type ServerProcess } from '../../support/server-process.js';
import { LockHolder } from '../helpers/faults.js';
import { childPids } from '../helpers/processes.js';

const CLIENTS = 24;
const LINES_PER_CLIENT = 8_000;
const LOCK_MS = 2_000;
/** Growth of the cluster's resident memory allowed while the store is stalled (paced: about 40 MB). */
const MAX_GROWTH_BYTES = 100 << 20;

const dir = mkdtempSync(join(tmpdir(), 'helo-cluster-memory-'));
let server: ServerProcess | null = null;
let holder: LockHolder | null = null;
const sockets: Socket[] = [];
after(async () => {
  for (const socket of sockets) socket.destroy();
  holder?.kill();
  await server?.stop();
  rmSync(dir, { recursive: true, force: true });
});

function treeRss(pid: number): number {
  let total = 0;
  for (const member of [pid, ...childPids(pid)]) {
    try {
      total += readRss(member);
    } catch {
      // Exited meanwhile.
    }
  }
  return total;
}

interface Tally {
  drcv: number;
  fail: number;
  other: number;
}

/** Sends everything at once and counts the replies until `expected` have come. */
function pipeline(port: number, tally: Tally, expected: number): Promise<void> {
  const request = Buffer.from('HELO t\r\n' + 'DATA x\r\n'.repeat(LINES_PER_CLIENT));
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    sockets.push(socket);
    let replies = 0;
    let rest = '';
    socket.setEncoding('latin1');
    socket.on('error', reject);
    socket.on('close', () => reject(new Error(`closed after ${replies} replies`)));
    socket.on('data', (text: string) => {
      const lines = (rest + text).split('\r\n');
      rest = lines.pop()!;
      for (const line of lines) {
        replies++;
        if (line.startsWith('300 ')) tally.drcv++;
        else if (line.startsWith('500 ')) tally.fail++;
        else if (!line.startsWith('100 ')) tally.other++;
      }
      if (replies === expected) {
        socket.removeAllListeners('close');
        resolve();
      }
    });
    socket.write(request);
  });
}

it('a cluster with a stalled store parses no more than its bound: every pipelined payload is stored', async (t) => {
  const db = join(dir, 'db');
  server = await spawnServer([
    '--mode',
    'cluster',
    '--workers',
    '2',
    '--store',
    `sqlite:${db}`,
    '--log-level',
    'error',
  ]);
  const pid = server.child.pid!;
  await sleep(300);
  const before = treeRss(pid);
  holder = await LockHolder.lock(db);

  // Sampled while the store is stalled: what the cluster took in is then
  // all in flight. (Once the lock goes, the memory the commits churn
  // through depends on when each process collects its garbage.)
  let peak = before;
  const sampler = setInterval(() => (peak = Math.max(peak, treeRss(pid))), 50);
  const tally: Tally = { drcv: 0, fail: 0, other: 0 };
  const clients = Array.from({ length: CLIENTS }, () =>
    pipeline(server!.port, tally, LINES_PER_CLIENT + 1),
  );
  await sleep(LOCK_MS);
  clearInterval(sampler);
  peak = Math.max(peak, treeRss(pid));
  await holder.release();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(clients),
    new Promise((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`replies missing after 20 s: ${JSON.stringify(tally)}`)),
        20_000,
      );
    }),
  ]).finally(() => clearTimeout(timer));
  assert.deepEqual(tally, { drcv: CLIENTS * LINES_PER_CLIENT, fail: 0, other: 0 });
  const growthMb = Math.round((peak - before) / 2 ** 20);
  t.diagnostic(`the cluster grew by ${growthMb} MB while its store was stalled`);
  assert.ok(
    peak - before < MAX_GROWTH_BYTES,
    `the cluster grew by ${growthMb} MB while its store was stalled (bound: ${MAX_GROWTH_BYTES >> 20} MB)`,
  );
});
