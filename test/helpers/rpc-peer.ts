/**
 * The child end of test/server/ipc-rpc.test.ts, over a real IPC channel.
 * It answers `ECHO` (after `delayMs`), `FAIL` (always an error) and `HANG`
 * (never), and on `test:ask` asks its parent `count` questions of `ASK` at
 * once and reports how each ended.
 */
import { parentChannel } from '../../src/server/ipc/messages.js';
import { answerRequests, IpcRequester, rpcChannel } from '../../src/server/ipc/rpc.js';

export const ECHO = rpcChannel<{ value: number; delayMs: number }, number>(
  'test:echo',
  'test:echoed',
);
export const FAIL = rpcChannel<string, never>('test:fail', 'test:failed');
export const HANG = rpcChannel<null, null>('test:hang', 'test:hung');
export const ASK = rpcChannel<number, number>('test:ask-parent', 'test:parent-answer');

export interface AskOrder {
  readonly type: 'test:ask';
  readonly count: number;
}

export interface AskReport {
  readonly type: 'test:asked';
  readonly outcomes: readonly string[];
}

// Only as the forked child (the test imports the channels from here too).
if (process.env.HELO_TEST_RPC_PEER === '1') {
  const parent = parentChannel();
  answerRequests(
    parent,
    ECHO,
    ({ value, delayMs }) =>
      new Promise<number>((resolve) => setTimeout(() => resolve(value * 2), delayMs)),
    { maxConcurrent: 1_000 },
  );
  answerRequests(
    parent,
    FAIL,
    (why) => {
      throw new TypeError(why);
    },
    { maxConcurrent: 1 },
  );
  answerRequests(parent, HANG, () => new Promise<null>(() => {}), { maxConcurrent: 1_000 });
  const asker = new IpcRequester(parent, ASK, { maxOutstanding: 100 });
  parent.on('message', (message: unknown) => {
    const order = message as AskOrder;
    if (order.type !== 'test:ask') return;
    const asked = Array.from({ length: order.count }, (_, i) =>
      asker.request(i, { timeoutMs: 5_000 }).then(
        (answer) => `ok ${answer}`,
        (error: unknown) => `error ${(error as Error).message}`,
      ),
    );
    void Promise.all(asked).then((outcomes) =>
      parent.send({ type: 'test:asked', outcomes } satisfies AskReport),
    );
  });
}
