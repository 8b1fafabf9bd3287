/**
 * The worker-thread entry of a load: runs one ThreadLoad and speaks a tiny
 * message protocol with run-load.ts (worker-messages.ts).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { revivePlan } from './load-plan.js';
import { ThreadLoad } from './thread-load.js';
import type { ToWorker, WorkerData, FromWorker } from './worker-messages.js';
import { ProcessError } from '../errors.js';

const port = parentPort;
if (port === null) throw new ProcessError('load-worker.js runs only as a worker thread');

const data = workerData as WorkerData;
const load = new ThreadLoad({ ...data.options, plan: revivePlan(data.options.plan) });
const post = (message: FromWorker): void => port.postMessage(message);

port.on('message', (message: ToWorker) => {
  if (message.type === 'measure') load.beginMeasuring(message.budget);
  else if (message.type === 'stop') load.stop();
});

let progressTimer: NodeJS.Timeout | null = null;
if (data.progressIntervalMs !== null) {
  progressTimer = setInterval(
    () => post({ type: 'progress', ...load.progress() }),
    data.progressIntervalMs,
  );
}

load.start(data.measuring, data.budget);
post({ type: 'started' });
void load.finished.then(() => {
  if (progressTimer !== null) clearInterval(progressTimer);
  post({ type: 'result', result: load.result() });
  port.close();
});
