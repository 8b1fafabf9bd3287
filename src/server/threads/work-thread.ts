/**
 * One worker thread of `--mode threads` (thread-pool.ts): it gets `[id,
 * cpuMs]`, does the request's CPU work and answers `id`. It holds no
 * socket, no store and no session: Node cannot hand a socket to a thread,
 * so those stay on the main thread (threads-server.ts).
 */
import { parentPort } from 'node:worker_threads';
import { ProcessError } from '../../errors.js';
import { SimulatedWork } from '../simulated-work.js';

if (parentPort === null) throw new ProcessError('work-thread.js runs as a worker thread');
const port = parentPort;

port.on('message', ([id, cpuMs]: [number, number]) => {
  SimulatedWork.from({ workMs: 0, workCpuMs: cpuMs })?.burnCpu();
  port.postMessage(id);
});
