/**
 * ipc/rpc.ts over a real IPC channel: a forked child (test/helpers/rpc-peer.ts)
 * answers, or asks, and the bounds, timeouts and the channel's end are seen
 * from the other process, as the store, the insight and the counters see them.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterEach, test } from 'node:test';
import assert from 'node:assert/strict';
import type { IpcPeer } from '../../src/server/ipc/messages.js';
import { answerRequests, IpcRequester } from '../../src/server/ipc/rpc.js';
import { ASK, ECHO, FAIL, HANG, type AskOrder, type AskReport } from '../helpers/rpc-peer.js';

const PEER_PROGRAM = fileURLToPath(new URL('../helpers/rpc-peer.js', import.meta.url));

const children: ChildProcess[] = [];
afterEach(async () => {
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await once(child, 'exit');
    }
  }
});

/** The child's next report, past the requests it sends meanwhile. */
function nextReport(child: ChildProcess): Promise<AskReport> {
  return new Promise((resolve) => {
    const onMessage = (message: unknown): void => {
      if ((message as { type?: unknown }).type !== 'test:asked') return;
      child.off('message', onMessage);
      resolve(message as AskReport);
    };
    child.on('message', onMessage);
  });
}

function startPeer(): ChildProcess {
  const child = fork(PEER_PROGRAM, [], {
    serialization: 'advanced',
    env: { ...process.env, HELO_TEST_RPC_PEER: '1' },
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  children.push(child);
  return child;
}

test('answers come back to the request that asked, whatever their order', async () => {
  const child = startPeer();
  const echo = new IpcRequester(child as IpcPeer, ECHO, { maxOutstanding: 100 });
  // Later requests are answered first: each must still get its own answer.
  const answers = await Promise.all(
    Array.from({ length: 50 }, (_, i) => echo.request({ value: i, delayMs: 100 - 2 * i })),
  );
  assert.deepEqual(
    answers,
    Array.from({ length: 50 }, (_, i) => i * 2),
  );
  assert.equal(echo.outstanding, 0);
  echo.close();
});

test('an error answer rejects with its message', async () => {
  const child = startPeer();
  const fail = new IpcRequester(child as IpcPeer, FAIL, { maxOutstanding: 1 });
  await assert.rejects(fail.request('no such thing'), {
    code: 'HELO_ERR_PROCESS',
    message: 'no such thing',
  });
  fail.close();
});

test('past maxOutstanding a request fails at once; a timeout frees its place', async () => {
  const child = startPeer();
  const hang = new IpcRequester(child as IpcPeer, HANG, { maxOutstanding: 3 });
  const waiting = [1, 2, 3].map(() => hang.request(null, { timeoutMs: 300 }));
  const started = Date.now();
  await assert.rejects(hang.request(null), /too many requests/);
  assert.ok(Date.now() - started < 100, 'refused at once');
  assert.equal(hang.outstanding, 3);
  for (const request of waiting) await assert.rejects(request, /did not answer in time/);
  assert.equal(hang.outstanding, 0);
  // Room again.
  await assert.rejects(hang.request(null, { timeoutMs: 10 }), /did not answer in time/);
  hang.close();
});

test('when the other process dies, every unanswered request fails at once', async () => {
  const child = startPeer();
  let goneCalls = 0;
  const hang = new IpcRequester(child as IpcPeer, HANG, {
    maxOutstanding: 10,
    onGone: () => goneCalls++,
  });
  const waiting = [1, 2, 3, 4].map(() => hang.request(null));
  await hang.request(null, { timeoutMs: 200 }).catch(() => {}); // the child is up and reading
  const idle = hang.idle();
  child.kill('SIGKILL');
  const outcomes = await Promise.allSettled(waiting);
  await idle;
  assert.deepEqual(
    outcomes.map((outcome) => outcome.status),
    ['rejected', 'rejected', 'rejected', 'rejected'],
  );
  assert.match(String((outcomes[0] as PromiseRejectedResult).reason), /gone/);
  assert.equal(goneCalls, 1);
  await assert.rejects(hang.request(null), /gone/);
  hang.close();
});

test('the answering side answers at most maxConcurrent at once and refuses the rest', async () => {
  const child = startPeer();
  let active = 0;
  let mostActive = 0;
  const stop = answerRequests(
    child as IpcPeer,
    ASK,
    async (question) => {
      active++;
      mostActive = Math.max(mostActive, active);
      await new Promise((resolve) => setTimeout(resolve, 100));
      active--;
      return question + 1;
    },
    { maxConcurrent: 3, busy: 'busy, ask later' },
  );
  const report = nextReport(child);
  child.send({ type: 'test:ask', count: 5 } satisfies AskOrder);
  assert.deepEqual((await report).outcomes, [
    'ok 1',
    'ok 2',
    'ok 3',
    'error busy, ask later',
    'error busy, ask later',
  ]);
  assert.equal(mostActive, 3);
  // Once answered, there is room again.
  const again = nextReport(child);
  child.send({ type: 'test:ask', count: 2 } satisfies AskOrder);
  assert.deepEqual((await again).outcomes, ['ok 1', 'ok 2']);
  stop();
});
