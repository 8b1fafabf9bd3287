/**
 * A stand-in for src/server/threads/work-thread.ts that throws on its first
 * job while the file named by HELO_TEST_CRASH_MARKER exists (and removes
 * it): exactly one thread of the pool dies, with a job in hand.
 */
import { existsSync, unlinkSync } from 'node:fs';
import { parentPort } from 'node:worker_threads';

const marker = process.env.HELO_TEST_CRASH_MARKER ?? '';
const port = parentPort!;

port.on('message', ([id, cpuMs]: [number, number]) => {
  if (marker !== '' && existsSync(marker)) {
    unlinkSync(marker);
    throw new Error('this thread crashes on purpose');
  }
  const until = performance.now() + cpuMs;
  while (performance.now() < until) {
    // Busy, as the real thread is.
  }
  port.postMessage(id);
});
